//! Everything the assistant says that no model writes, in each language.
//!
//! These are templates over the shop's profile, never model output, so they
//! can state the shop's name and hours without an answer check.

use shopchat_core::shop::ShopProfile;
use shopchat_core::Language;

/// The fixed replies of one shop.
#[derive(Debug, Clone)]
pub struct Texts {
    shop: String,
    hours: Option<String>,
}

impl Texts {
    pub fn for_shop(profile: &ShopProfile) -> Self {
        Self { shop: profile.name.clone(), hours: profile.support.hours.clone() }
    }

    pub fn greeting(&self, lang: Language) -> String {
        match lang {
            Language::En => format!(
                "Hello! I'm the {} assistant. Ask me about delivery, returns, payments or your order.",
                self.shop
            ),
            Language::Zh => format!("您好！我是{}的客服助手。您可以问我配送、退货、付款或订单的问题。", self.shop),
        }
    }

    pub fn thanks(&self, lang: Language) -> String {
        match lang {
            Language::En => "You're welcome! Is there anything else I can help with?".into(),
            Language::Zh => "不客气！还有什么可以帮您的吗？".into(),
        }
    }

    pub fn goodbye(&self, lang: Language) -> String {
        match lang {
            Language::En => format!("Thank you for visiting {}. Goodbye!", self.shop),
            Language::Zh => format!("感谢您光临{}，再见！", self.shop),
        }
    }

    /// The knowledge base does not cover the question: say so, offer a person.
    pub fn refusal(&self, lang: Language, no_answer: &str) -> String {
        match lang {
            Language::En => {
                format!("{no_answer} Would you like to talk to a person from our team?")
            }
            Language::Zh => format!("{no_answer}需要为您转接人工客服吗？"),
        }
    }

    /// The conversation is handed to staff.
    pub fn handoff(&self, lang: Language) -> String {
        match (lang, &self.hours) {
            (Language::En, Some(hours)) => format!(
                "I've asked a person from our team to join this conversation; they will reply \
                 here. Our team is available {hours}."
            ),
            (Language::En, None) => {
                "I've asked a person from our team to join this conversation; they will reply here."
                    .into()
            }
            (Language::Zh, _) => "我已请人工客服加入对话，他们会在这里回复您。".into(),
        }
    }

    /// The same words whether or not the order exists, so they reveal nothing.
    pub fn ask_for_verification(&self, lang: Language) -> String {
        match lang {
            Language::En => "I can help with that. To keep your details private, please give me \
                             your order number and the email address you used for the order."
                .into(),
            Language::Zh => {
                "我可以帮您查询。为保护您的隐私，请提供订单号和下单时使用的电子邮箱。".into()
            }
        }
    }

    /// A message's order number and e-mail address did not verify: say so,
    /// and ask again (the same words whether or not the order exists).
    pub fn not_verified(&self, lang: Language) -> String {
        match lang {
            Language::En => "We couldn't verify that order number and email address. Please check \
                             them and give me the order number and the email address you used for \
                             the order."
                .into(),
            Language::Zh => {
                "无法验证该订单号和电子邮箱。请核对后提供订单号和下单时使用的电子邮箱。".into()
            }
        }
    }

    /// Too many verifications failed; the message's was not even tried.
    pub fn verify_rate_limited(&self, lang: Language) -> String {
        match lang {
            Language::En => "Too many verification attempts; please try again later.".into(),
            Language::Zh => "验证尝试次数过多，请稍后再试。".into(),
        }
    }

    pub fn verified(&self, lang: Language, name: &str) -> String {
        match lang {
            Language::En => format!("Thank you, {name}, you're verified."),
            Language::Zh => format!("谢谢，{name}，验证成功。"),
        }
    }

    /// A verified shopper named an order that is not theirs, or none at all:
    /// one reply for both.
    pub fn order_not_found(&self, lang: Language, number: &str) -> String {
        match lang {
            Language::En => format!(
                "I can't find order {number} among the orders of the customer you verified as. \
                 Please check the number, or verify with the email address used for that order."
            ),
            Language::Zh => format!("在您已验证的账户中找不到订单 {number}。请核对订单号，或使用该订单的电子邮箱重新验证。"),
        }
    }

    pub fn no_orders(&self, lang: Language) -> String {
        match lang {
            Language::En => "I can't find any orders for your account.".into(),
            Language::Zh => "没有找到您账户下的订单。".into(),
        }
    }

    pub fn recent_orders_intro(&self, lang: Language) -> String {
        match lang {
            Language::En => "Here are your most recent orders:".into(),
            Language::Zh => "以下是您最近的订单：".into(),
        }
    }

    pub fn which_order(&self, lang: Language, numbers: &[&str]) -> String {
        let list = numbers.join(", ");
        match lang {
            Language::En => format!("Which order would you like to return? Your orders: {list}."),
            Language::Zh => format!("您想退哪个订单？您的订单：{list}。"),
        }
    }

    pub fn return_started(
        &self,
        lang: Language,
        return_number: &str,
        order_number: &str,
    ) -> String {
        match lang {
            Language::En => format!(
                "Your return {return_number} for order {order_number} is started. We'll email \
                 you the return instructions."
            ),
            Language::Zh => format!("订单 {order_number} 的退货申请 {return_number} 已创建，我们会通过电子邮件发送退货说明。"),
        }
    }

    pub fn items_not_returnable(&self, lang: Language, skus: &[String]) -> String {
        let list = skus.join(", ");
        match lang {
            Language::En => format!("These items cannot be returned: {list}."),
            Language::Zh => format!("以下商品不能退货：{list}。"),
        }
    }

    pub fn generation_failed(&self, lang: Language) -> String {
        match lang {
            Language::En => "Sorry, something went wrong while answering. Please try again.".into(),
            Language::Zh => "抱歉，回答时出现了问题，请重试。".into(),
        }
    }
}
