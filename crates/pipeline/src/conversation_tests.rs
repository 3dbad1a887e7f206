//! The conversation's rules, played as scripts: each step is an event and
//! the actions it must lead to, written out as text. The demo shop's own
//! intent patterns and texts; no model, socket or database.

use std::path::Path;

use shopchat_core::protocol::AnswerOutcome;
use shopchat_core::Language;
use shopchat_retrieval::VerifiedCustomer;

use super::*;

fn rules() -> Rules {
    let faq = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../faq");
    let shop = crate::load::load_shop(&faq, None).expect("the demo shop loads");
    (*shop.rules).clone()
}

/// What happens next in a script.
enum Step {
    Say(&'static str),
    Check(Checked),
    Answered(Reply),
    Frame(Event<'static>),
}

struct Case {
    name: &'static str,
    /// The language `hello` named.
    lang: Option<Language>,
    /// Verified before the script starts (a resumed conversation).
    customer: Option<&'static str>,
    steps: Vec<(Step, Vec<&'static str>)>,
}

fn customer(id: &str) -> VerifiedCustomer {
    VerifiedCustomer::from_signed_identity(id)
}

fn answered(outcome: AnswerOutcome, text: &str, lang: Language) -> Step {
    Step::Answered(Reply::fixed(text.into(), outcome, lang))
}

fn handed_over(reason: &str) -> Step {
    let mut reply = Reply::fixed("ask a person".into(), AnswerOutcome::Handoff, Language::En);
    reply.effect = Some(Effect::Handoff { reason: reason.into() });
    Step::Answered(reply)
}

fn describe(action: &Action) -> String {
    match action {
        Action::Verify(Check::Order { order_number, email }) => {
            format!("verify {order_number} {email}")
        }
        Action::Verify(Check::Identity { customer_id, .. }) => format!("verify {customer_id}"),
        Action::Verified(customer) => format!("verified {}", customer.customer_id()),
        Action::NotVerified { rate_limited: false } => "not verified".into(),
        Action::NotVerified { rate_limited: true } => "not verified: rate limited".into(),
        Action::Respond(turn) => format!(
            "respond {} refusals={} history={}{}",
            turn.lang.map_or("?", Language::code),
            turn.refusals_in_a_row,
            turn.history.len(),
            if turn.customer.is_some() { " verified" } else { "" }
        ),
        Action::Reply(reply) => format!(
            "reply {} {:?}{}: {}",
            reply.lang.code(),
            reply.outcome,
            if reply.effect == Some(Effect::AskForVerification) { " +form" } else { "" },
            reply.text
        ),
        Action::StartReturn { customer, order_number, lang, .. } => format!(
            "start return {order_number} {} {}",
            lang.code(),
            customer.as_ref().map_or("unverified", |c| c.customer_id())
        ),
        Action::StopAnswer => "stop".into(),
        Action::Handoff { reason } => format!("handoff: {reason}"),
    }
}

fn cases() -> Vec<Case> {
    use Step::*;
    vec![
        Case {
            name: "a Chinese shopper who sends only an order number and e-mail stays in Chinese",
            lang: None,
            customer: None,
            steps: vec![
                (Say("我的订单到哪了？"), vec!["respond zh refusals=0 history=0"]),
                (answered(AnswerOutcome::Answered, "请提供订单号", Language::Zh), vec![]),
                (
                    Say("NW-100231 emma.clarke@example.com"),
                    vec!["verify NW-100231 emma.clarke@example.com"],
                ),
                (
                    Check(Checked::Verified(customer("C1001"))),
                    vec!["verified C1001", "respond zh refusals=0 history=2 verified"],
                ),
            ],
        },
        Case {
            name: "a failed verification stops with the order form, in the conversation's language",
            lang: Some(Language::Zh),
            customer: None,
            steps: vec![
                (
                    Say("NW-100231 someone.else@example.com"),
                    vec!["verify NW-100231 someone.else@example.com"],
                ),
                (
                    Check(Checked::Failed),
                    vec!["reply zh Answered +form: 无法验证该订单号和电子邮箱。请核对后提供订单号和下单时使用的电子邮箱。"],
                ),
                // Not verified: the next question is answered unverified.
                (Say("我的订单到哪了？"), vec!["respond zh refusals=0 history=1"]),
            ],
        },
        Case {
            name: "a rate-limited verification says so",
            lang: None,
            customer: None,
            steps: vec![
                (
                    Say("Where is NW-100231? My email is emma.clarke@example.com"),
                    vec!["verify NW-100231 emma.clarke@example.com"],
                ),
                (
                    Check(Checked::RateLimited),
                    vec!["reply en Answered +form: Too many verification attempts; please try again later."],
                ),
            ],
        },
        Case {
            name: "a message with words sets the language; one without keeps it",
            lang: Some(Language::Zh),
            customer: None,
            steps: vec![
                (Say("How long does delivery take?"), vec!["respond en refusals=0 history=0"]),
                (answered(AnswerOutcome::Answered, "2-3 days", Language::En), vec![]),
                (Say("??"), vec!["respond en refusals=0 history=2"]),
                (answered(AnswerOutcome::Answered, "Sorry?", Language::En), vec![]),
                (Say("配送需要多长时间？"), vec!["respond zh refusals=0 history=4"]),
            ],
        },
        Case {
            name: "a verified shopper's order number and e-mail are not checked again",
            lang: None,
            customer: Some("C1001"),
            steps: vec![(
                Say("NW-100231 emma.clarke@example.com"),
                vec!["respond en refusals=0 history=0 verified"],
            )],
        },
        Case {
            name: "don't-know answers in a row hand over; then the assistant keeps out until resolved",
            lang: None,
            customer: None,
            steps: vec![
                (Say("Who is your CEO?"), vec!["respond en refusals=0 history=0"]),
                (answered(AnswerOutcome::Refused, "I don't know.", Language::En), vec![]),
                // A stopped answer is neither an answer nor a refusal, and
                // adds nothing to the history.
                (Say("And your CFO?"), vec!["respond en refusals=1 history=2"]),
                (answered(AnswerOutcome::Stopped, "", Language::En), vec![]),
                (Say("And your CTO?"), vec!["respond en refusals=1 history=3"]),
                (handed_over("2 questions in a row"), vec!["handoff: 2 questions in a row"]),
                (Say("hello?"), vec![]),
                (Frame(Event::HandoffResolved), vec![]),
                (Say("What about returns?"), vec!["respond en refusals=0 history=6"]),
                (answered(AnswerOutcome::Refused, "I don't know.", Language::En), vec![]),
                (answered(AnswerOutcome::Answered, "Within 30 days.", Language::En), vec![]),
                (Say("thanks"), vec!["respond en refusals=0 history=9"]),
            ],
        },
        Case {
            name: "frames: verification, identity, returns, stop and a person",
            lang: None,
            customer: None,
            steps: vec![
                (
                    Frame(Event::VerifyOrder {
                        order_number: "NW-100231",
                        email: "someone.else@example.com",
                    }),
                    vec!["verify NW-100231 someone.else@example.com"],
                ),
                (Check(Checked::Failed), vec!["not verified"]),
                (
                    Frame(Event::StartReturn { order_number: "NW-101296", skus: None }),
                    vec!["start return NW-101296 en unverified"],
                ),
                (
                    Frame(Event::Identity { customer_id: "C1024", signature: "ab" }),
                    vec!["verify C1024"],
                ),
                (Check(Checked::RateLimited), vec!["not verified: rate limited"]),
                (
                    Frame(Event::Identity { customer_id: "C1024", signature: "ab" }),
                    vec!["verify C1024"],
                ),
                (Check(Checked::Verified(customer("C1024"))), vec!["verified C1024"]),
                (
                    Frame(Event::StartReturn { order_number: "NW-101296", skus: None }),
                    vec!["start return NW-101296 en C1024"],
                ),
                (Frame(Event::Stop), vec!["stop"]),
                (Frame(Event::Handoff), vec!["handoff: the shopper asked for a person"]),
                (Say("hello?"), vec![]),
            ],
        },
    ]
}

#[test]
fn conversations_play_out_as_scripted() {
    let rules = rules();
    for case in cases() {
        let mut conversation = Conversation::resume(
            "test",
            Resumed {
                lang: case.lang,
                customer: case.customer.map(customer),
                ..Resumed::default()
            },
        );
        for (number, (step, expected)) in case.steps.into_iter().enumerate() {
            let actions = match &step {
                Step::Say(text) => conversation.handle(&rules, Event::Message(text)),
                Step::Check(checked) => {
                    conversation.handle(&rules, Event::Checked(checked.clone()))
                }
                Step::Answered(reply) => conversation.handle(&rules, Event::Answered(reply)),
                Step::Frame(event) => conversation.handle(&rules, event.clone()),
            };
            let got: Vec<String> = actions.iter().map(describe).collect();
            assert_eq!(got, expected, "{}: step {}", case.name, number + 1);
        }
    }
}

#[test]
fn a_turn_carries_the_conversation_key_and_the_history_before_the_message() {
    let rules = rules();
    let mut conversation = Conversation::new("c-1", Some(Language::En));
    conversation.handle(&rules, Event::Message("hi"));
    conversation.handle(
        &rules,
        Event::Answered(&Reply::fixed("Hello!".into(), AnswerOutcome::Answered, Language::En)),
    );
    let actions = conversation.handle(&rules, Event::Message("How long is delivery?"));
    let [Action::Respond(request)] = actions.as_slice() else { panic!("{actions:?}") };
    let turn = request.turn();
    assert_eq!(turn.conversation, Some("c-1"));
    assert_eq!(turn.text, "How long is delivery?");
    let history: Vec<&str> = turn.history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(history, ["hi", "Hello!"]);
    assert_eq!(conversation.history().len(), 3);
}
