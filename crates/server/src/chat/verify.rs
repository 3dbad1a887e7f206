//! Verification (`verify_order`, `identity`, or an order number and e-mail
//! in a message) and starting a return.

use std::time::Instant;

use shopchat_core::protocol::{AnswerOutcome, ErrorCode, ServerFrame};
use shopchat_pipeline::{Reply, ReturnRefusal};
use shopchat_retrieval::VerifiedCustomer;
use shopchat_store::NewReturn;

use super::outbox::End;
use super::session::Session;

impl Session {
    pub(super) async fn verify(
        &mut self,
        check: impl FnOnce() -> Option<VerifiedCustomer> + Send + 'static,
    ) -> Result<(), End> {
        match self.try_verify(check).await? {
            Verification::Verified => Ok(()),
            Verification::Failed(ErrorCode::RateLimited) => self.error(
                ErrorCode::RateLimited,
                "Too many verification attempts; please try again later.",
            ),
            Verification::Failed(code) => {
                self.error(code, "We couldn't verify that order number and email address.")
            }
        }
    }

    /// Rate-limited verification; on success the conversation is linked to
    /// the customer and the client told with `verified`.
    pub(super) async fn try_verify(
        &mut self,
        check: impl FnOnce() -> Option<VerifiedCustomer> + Send + 'static,
    ) -> Result<Verification, End> {
        // The attempt is counted before the check, per conversation and per
        // address, so that parallel connections cannot all pass the limit;
        // a successful verification gives its places back.
        let now = Instant::now();
        if !self.verify_failures.try_take(now) {
            return Ok(Verification::Failed(ErrorCode::RateLimited));
        }
        let Some(attempt) = self.state.verify_failures.try_take(&self.ip) else {
            self.verify_failures.give_back(now);
            return Ok(Verification::Failed(ErrorCode::RateLimited));
        };
        let customer = match tokio::task::spawn_blocking(check).await {
            Ok(customer) => customer,
            Err(join) => {
                self.internal_error(&join)?;
                return Ok(Verification::Failed(ErrorCode::Internal));
            }
        };
        let Some(customer) = customer else {
            return Ok(Verification::Failed(ErrorCode::NotVerified));
        };
        self.verify_failures.give_back(now);
        self.state.verify_failures.give_back(&self.ip, attempt);
        let id = self.conversation_id();
        let customer_id = customer.customer_id().to_owned();
        if let Err(error) = self.state.with_store(move |s| s.set_customer(&id, &customer_id)).await
        {
            self.internal_error(&error)?;
            return Ok(Verification::Failed(ErrorCode::Internal));
        }
        let customer_name = self.state.assistant.customer_name(&customer);
        self.customer = Some(customer);
        self.send(ServerFrame::Verified { customer_name })?;
        Ok(Verification::Verified)
    }

    pub(super) async fn on_start_return(
        &mut self,
        order_number: String,
        skus: Option<Vec<String>>,
    ) -> Result<(), End> {
        if self.answering.is_some() {
            return self.error(
                ErrorCode::BadRequest,
                "An answer is still being written; wait for it or send \"stop\".",
            );
        }
        let received_at = Instant::now();
        let lang = self.lang();
        let decision = self.state.assistant.approve_return(
            self.customer.as_ref(),
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

pub(super) enum Verification {
    Verified,
    Failed(ErrorCode),
}
