//! Webhooks: the seed's "serverless functions for event handling" (API.md, "Webhooks").
//! A named subscription POSTs every matching event of the log, as the CloudEvent a
//! RabbitMQ subscriber gets, to a URL, signed the Standard Webhooks way, in order, at
//! least once, with a checkpoint of its own.
//!
//! A tour:
//! - [`SubscriptionTable`] (`table.rs`): `webhook_subscriptions`, the one place its SQL
//!   lives; command-api writes subscriptions through it, the deliverer its progress.
//! - [`SubscriptionName`] (`name.rs`), [`TargetPolicy`] (`target.rs`: only `https` to
//!   public addresses unless insecure targets are allowed), [`SigningSecret`]
//!   (`signature.rs`).
//! - `deliver.rs` (feature `deliverer`): the leader-elected deliverer, one worker per
//!   active subscription; its binary is `src/bin/webhooks.rs`.
//!
//! Never writes the log; reads it through `event_store`.

#[cfg(feature = "deliverer")]
mod deliver;
mod name;
mod signature;
mod table;
mod target;

#[cfg(feature = "deliverer")]
pub use deliver::{Deliverer, DelivererError, DelivererSettings, DeliveryMetrics};
pub use name::{InvalidName, SubscriptionName};
pub use signature::SigningSecret;
pub use table::{NewSubscription, Status, Subscription, SubscriptionTable, TableError};
pub use target::{is_internal, PolicyResolver, TargetError, TargetPolicy};
