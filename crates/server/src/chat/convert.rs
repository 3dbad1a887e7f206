//! Conversions between the pipeline's, the store's and the wire's types.

use std::time::Duration;

use shopchat_core::protocol::{AnswerAction, AnswerOutcome};
use shopchat_pipeline::{Effect, Reply};
use shopchat_store as store;

pub(super) fn action_of(reply: &Reply) -> Option<AnswerAction> {
    match &reply.effect {
        Some(Effect::AskForVerification) => Some(AnswerAction::VerifyOrder),
        Some(Effect::OfferReturn { order_number }) => {
            Some(AnswerAction::StartReturn { order_number: order_number.clone() })
        }
        Some(Effect::Handoff { .. }) | None => None,
    }
}

pub(super) fn outcome_to_store(outcome: AnswerOutcome) -> store::Outcome {
    match outcome {
        AnswerOutcome::Answered => store::Outcome::Answered,
        AnswerOutcome::Refused => store::Outcome::Refused,
        AnswerOutcome::Replaced => store::Outcome::Replaced,
        AnswerOutcome::Handoff => store::Outcome::Handoff,
        AnswerOutcome::Error => store::Outcome::Error,
        AnswerOutcome::Stopped => store::Outcome::Stopped,
    }
}

pub(super) fn outcome_to_wire(outcome: store::Outcome) -> AnswerOutcome {
    match outcome {
        store::Outcome::Answered => AnswerOutcome::Answered,
        store::Outcome::Refused => AnswerOutcome::Refused,
        store::Outcome::Replaced => AnswerOutcome::Replaced,
        store::Outcome::Handoff => AnswerOutcome::Handoff,
        store::Outcome::Error => AnswerOutcome::Error,
        store::Outcome::Stopped => AnswerOutcome::Stopped,
    }
}

pub(super) fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

/// A random token of `bytes` bytes, hex-encoded: session secrets and ids.
pub(super) fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source works");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
