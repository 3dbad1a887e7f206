//! Verification (`verify_order`, `identity`, or an order number and e-mail
//! in a message) and starting a return.

use std::time::Instant;

use shopchat_core::protocol::{AnswerOutcome, ErrorCode, ServerFrame};
use shopchat_core::Language;
use shopchat_pipeline::{Check, Checked, Reply, ReturnRefusal};
use shopchat_retrieval::VerifiedCustomer;
use shopchat_store::NewReturn;

use super::outbox::End;
use super::session::Session;

impl Session {
    /// Runs a check the conversation asked for, rate-limited; on success
    /// the conversation is linked to the customer in the store before the
    /// result is reported, so a failed write counts as a failed check.
    pub(super) async fn check(&mut self, check: Check) -> Result<Checked, End> {
        // The attempt is counted before the check, per conversation and per
        // address, so that parallel connections cannot all pass the limit;
        // a successful verification gives its places back.
        let now = Instant::now();
        if !self.verify_failures.try_take(now) {
            return Ok(Checked::RateLimited);
        }
        let Some(attempt) = self.state.verify_failures.try_take(&self.ip) else {
            self.verify_failures.give_back(now);
            return Ok(Checked::RateLimited);
        };
        let assistant = self.state.assistant.clone();
        let run = move || match check {
            Check::Order { order_number, email } => assistant.verify_order(&order_number, &email),
            Check::Identity { customer_id, signature } => {
                assistant.verify_identity(&customer_id, &signature)
            }
        };
        let customer = match tokio::task::spawn_blocking(run).await {
            Ok(customer) => customer,
            Err(join) => {
                self.internal_error(&join)?;
                return Ok(Checked::Failed);
            }
        };
        let Some(customer) = customer else {
            return Ok(Checked::Failed);
        };
        self.verify_failures.give_back(now);
        self.state.verify_failures.give_back(&self.ip, attempt);
        let id = self.conversation_id();
        let customer_id = customer.customer_id().to_owned();
        if let Err(error) = self.state.with_store(move |s| s.set_customer(&id, &customer_id)).await
        {
            self.internal_error(&error)?;
            return Ok(Checked::Failed);
        }
        Ok(Checked::Verified(customer))
    }

    /// Checks a return against the rules, stores it and tells the client;
    /// the reply (started, or the rule that refuses it) is an answer.
    pub(super) async fn start_return(
        &mut self,
        customer: Option<VerifiedCustomer>,
        order_number: String,
        skus: Option<Vec<String>>,
        lang: Language,
        received_at: Instant,
    ) -> Result<(), End> {
        let decision = self.state.assistant.approve_return(
            customer.as_ref(),
            &order_number,
            skus.as_deref(),
            lang,
        );
        match decision {
            Ok(approval) => {
                let new = NewReturn {
                    order_number: approval.order_number.clone(),
                    customer_id: approval.customer_id.clone(),
                    items: approval.skus.clone(),
                    reason: None,
                };
                let record = match self.state.with_store(move |s| s.create_return(new)).await {
                    Ok(record) => record,
                    Err(error) => return self.internal_error(&error),
                };
                self.send(ServerFrame::ReturnStarted {
                    return_number: record.return_number.clone(),
                    order_number: record.order_number.clone(),
                })?;
                let text = self.state.assistant.texts().return_started(
                    lang,
                    &record.return_number,
                    &record.order_number,
                );
                self.send_reply(Reply::fixed(text, AnswerOutcome::Answered, lang), received_at)
                    .await
            }
            Err(ReturnRefusal::NotVerified) => self.error(
                ErrorCode::NotVerified,
                "Verify the order with its number and email address first.",
            ),
            Err(ReturnRefusal::NotEligible { text }) => {
                self.send_reply(Reply::fixed(text, AnswerOutcome::Refused, lang), received_at).await
            }
        }
    }
}
