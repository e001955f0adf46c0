import { useState, type FormEvent } from 'react';
import type { CommandAnswer } from '../api';
import { TextField } from '../components/Field';
import { ProblemAlert } from '../components/ProblemAlert';
import { useApp } from '../context';
import { useCommand } from '../hooks';
import { fieldMessages } from '../messages';

const FIELDS = ['email', 'display_name', 'user_id'] as const;

/** POST /api/v1/users. With `selfId`, a `user` registers itself (user_id = its sub). */
export function RegisterForm({ selfId, onRegistered }: { selfId?: string; onRegistered: (a: CommandAnswer) => void }) {
  const { client } = useApp();
  const cmd = useCommand();
  const [email, setEmail] = useState('');
  const [displayName, setDisplayName] = useState('');
  const errors = fieldMessages(cmd.problem, FIELDS);

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    const body = { ...(selfId ? { user_id: selfId } : {}), email: email.trim(), display_name: displayName };
    const answer = await cmd.submit(body, (key) => client.registerUser(body, { idempotencyKey: key }));
    if (answer) {
      setEmail('');
      setDisplayName('');
      onRegistered(answer);
    }
  };

  return (
    <form onSubmit={onSubmit} noValidate aria-labelledby="register-title" data-testid="register-form">
      <h2 id="register-title">{selfId ? 'Register yourself' : 'Register a user'}</h2>
      <div className="row">
        <TextField id="email" label="E-mail" type="email" autoComplete="off" value={email} onChange={(e) => setEmail(e.target.value)} error={errors.email} required maxLength={254} />
        <TextField
          id="display_name"
          label="Display name"
          autoComplete="off"
          value={displayName}
          onChange={(e) => setDisplayName(e.target.value)}
          error={errors.display_name}
          hint="1–100 characters."
          required
        />
      </div>
      {errors.user_id ? <p className="field-error">{errors.user_id}</p> : null}
      <ProblemAlert problem={cmd.problem} context="Registration failed" />
      <button type="submit" className="btn btn-primary" disabled={cmd.pending} aria-busy={cmd.pending} data-testid="register-submit">
        {cmd.pending ? 'Registering…' : 'Register'}
      </button>
    </form>
  );
}
