//! The pure heart of hookd: the decisions, with no I/O.
//!
//! Everything here is a function of its arguments. The clock and randomness come in as
//! parameters, so every rule (which webhooks an event fans out to, which bytes a receiver
//! gets, when the next attempt happens, which addresses may be called) is testable as data.
//!
//! Main types: [`event_type::EventType`] and [`event_type::EventFilter`] (what is
//! published and what a webhook subscribes to), [`envelope::Envelope`] (the exact body
//! bytes), [`schedule::RetrySchedule`] and [`outcome::AttemptVerdict`] (what happens after
//! an attempt), [`target::TargetPolicy`] (which endpoint URLs may be called).

pub mod envelope;
pub mod event_type;
pub mod health;
pub mod ids;
pub mod json;
pub mod outcome;
pub mod sample;
pub mod schedule;
pub mod signing;
pub mod target;
pub mod time;
