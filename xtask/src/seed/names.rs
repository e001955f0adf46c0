//! Who the seeded customers are: plausible names from many countries and e-mail
//! addresses at documentation domains.

// Compact on purpose: rustfmt would give every name a line of its own.
#[rustfmt::skip]
pub(super) const FIRST_NAMES: &[&str] = &[
    "Ada", "Ahmed", "Aiko", "Alejandro", "Amara", "Anna", "Arjun", "Astrid", "Ben", "Carla",
    "Chen", "Chloé", "Daniel", "Dmitri", "Elena", "Emeka", "Emma", "Fatima", "Felix", "Freya",
    "Giulia", "Grace", "Hannah", "Hiro", "Ines", "Isaac", "Jakob", "Jana", "João", "Julia", "Kai",
    "Karin", "Leila", "Liam", "Lucía", "Maja", "Malik", "Marta", "Mateo", "Mei", "Milan", "Nadia",
    "Niamh", "Noah", "Olga", "Omar", "Paul", "Priya", "Rafael", "Rosa", "Sami", "Sara",
    "Sebastian", "Sofia", "Tariq", "Thea", "Tomás", "Valentina", "Yusuf", "Zoe",
];

// Compact on purpose: rustfmt would give every name a line of its own.
#[rustfmt::skip]
pub(super) const LAST_NAMES: &[&str] = &[
    "Andersen", "Bauer", "Becker", "Bianchi", "Brown", "Castro", "Chen", "Costa", "Dubois",
    "Eriksson", "Fischer", "Fernández", "García", "Hansen", "Hoffmann", "Ivanova", "Jansen",
    "Kaur", "Keller", "Kim", "Kowalski", "Larsen", "Lee", "Lopez", "Martin", "Meyer", "Moreau",
    "Müller", "Murphy", "Nakamura", "Novak", "Nowak", "O'Brien", "Okafor", "Olsen", "Patel",
    "Peeters", "Petrov", "Popescu", "Richter", "Rossi", "Santos", "Schmidt", "Schneider", "Silva",
    "Smith", "Suzuki", "Tanaka", "Van Dijk", "Wagner", "Walsh", "Weber", "Wilson", "Yilmaz",
    "Zhang",
];

/// Reserved for documentation (RFC 2606): plausible, and never anyone's real inbox.
pub(super) const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "mail.example.com",
    "post.example.org",
    "inbox.example.net",
];

pub(super) fn ascii_fold(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' => Some('a'),
            'é' | 'è' | 'ê' | 'ë' => Some('e'),
            'í' | 'ì' | 'î' | 'ï' => Some('i'),
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' => Some('o'),
            'ú' | 'ù' | 'û' | 'ü' => Some('u'),
            'ñ' => Some('n'),
            'ç' => Some('c'),
            c if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}
