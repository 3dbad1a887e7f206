//! The server's settings: built-in defaults, then `shopchat.toml`, then
//! environment and flags (the last two applied by the `shopchat` binary).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use shopchat_core::protocol::FrameLimits;
use shopchat_core::Language;
use shopchat_pipeline::AssistantConfig;

/// Everything the server needs; every field has a default that works on the
/// demo shop.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    pub assistant: AssistantConfig,
    /// The SQLite file, created on first start.
    pub database: PathBuf,
    /// Web pages allowed to open the chat websocket besides the server's own
    /// origin (`https://shop.example`). Requests without an `Origin` header
    /// come from programs, not pages, and are allowed.
    pub allowed_origins: Vec<String>,
    pub limits: Limits,
    /// How long a staff login lasts.
    pub staff_session: Duration,
}

impl ServerConfig {
    pub fn new(assistant: AssistantConfig, database: PathBuf) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            assistant,
            database,
            allowed_origins: Vec::new(),
            limits: Limits::default(),
            staff_session: Duration::from_secs(12 * 3600),
        }
    }

    /// The defaults: the demo shop, `data/`, `models/`, port 8080.
    pub fn standard() -> Self {
        let assistant = AssistantConfig::standard();
        let database = assistant.data_dir.join("shopchat.db");
        Self::new(assistant, database)
    }
}

/// Limits on what one client may do; see "Limits" in docs/protocol.md.
#[derive(Debug, Clone)]
pub struct Limits {
    pub frame: FrameLimits,
    pub messages_per_minute: u32,
    /// Shopper messages per minute from one client address, over all its
    /// conversations.
    pub messages_per_minute_per_address: u32,
    /// Failed order verifications allowed per `verify_window`, per
    /// connection and per client address.
    pub verify_failures: u32,
    pub verify_window: Duration,
    /// Frames waiting for a slow client before it is closed (1013).
    pub outbox_frames: usize,
    pub ping_interval: Duration,
    /// Silence after which a connection is closed (1001).
    pub idle_timeout: Duration,
    pub max_ws_message_bytes: usize,
    /// Failed staff logins allowed per client address per `verify_window`.
    pub login_failures: u32,
    /// Open chat websockets, overall and from one client address; a
    /// connection over either is closed at once with code 1013.
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// HTTP requests (pages, the staff API) handled at once; more wait for
    /// a turn within their deadline.
    pub http_concurrency: usize,
    /// The deadline of an HTTP request; past it the client gets 503.
    pub http_request_timeout: Duration,
    /// The deadline of an export or a re-index.
    pub http_long_request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            frame: FrameLimits::DEFAULT,
            messages_per_minute: 20,
            // Room for a shop's office or a shared address, not for a script.
            messages_per_minute_per_address: 120,
            verify_failures: 5,
            verify_window: Duration::from_secs(15 * 60),
            outbox_frames: 256,
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            max_ws_message_bytes: 1 << 20,
            login_failures: 10,
            // A session costs a few kilobytes and an outbox; the model's
            // queue, not this, bounds the work. Per address: room for a
            // shop's office or a carrier-grade NAT, not for one script.
            max_connections: 2_000,
            max_connections_per_address: 50,
            http_concurrency: 64,
            http_request_timeout: Duration::from_secs(30),
            http_long_request_timeout: Duration::from_secs(15 * 60),
        }
    }
}

/// `shopchat.toml`. Every key is optional; unknown keys are errors, so a
/// typo does not silently keep a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub shop: ShopSection,
    #[serde(default)]
    pub models: ModelsSection,
    #[serde(default)]
    pub limits: LimitsSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub addr: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database: Option<PathBuf>,
    pub allowed_origins: Option<Vec<String>>,
    pub staff_session_hours: Option<u64>,
    /// The secret of signed identities (HMAC-SHA256). Prefer the
    /// `SHOPCHAT_IDENTITY_SECRET` environment variable to keep it out of files.
    pub identity_secret: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopSection {
    pub dir: Option<PathBuf>,
    pub prompt: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsSection {
    pub dir: Option<PathBuf>,
    /// The chat model for English; `none` answers from passage text.
    pub en: Option<String>,
    /// The chat model for Chinese; `none` answers from passage text.
    pub zh: Option<String>,
    /// The main model, for the languages `en`/`zh` leave open that it writes.
    pub chat: Option<String>,
    /// A second model for languages the first cannot write; `""` for none.
    pub extra: Option<String>,
    /// The sentence embedders: one name for every language, or
    /// `en=NAME,zh=NAME`; `""` searches by keywords alone.
    pub embedding: Option<String>,
    pub max_tokens: Option<usize>,
    pub queue: Option<usize>,
    /// Shoppers' questions embedded at once for hybrid search, and how
    /// many more may wait before a question is answered `busy`.
    pub embedding_at_once: Option<usize>,
    pub embedding_queue: Option<usize>,
    /// Memory for retrieved passages' attention caches reused across
    /// answers, per chat model, in MiB; 0 turns the reuse off.
    pub passage_cache_mb: Option<usize>,
    /// `exact` (the default: answers as without the cache) or `moved`
    /// (passages reused in any order; faster, answers change).
    pub passage_reuse: Option<shopchat_inference::PassageReuse>,
    /// With `moved`, the share of each moved passage recomputed after the
    /// passages before it, in percent (0 to 100).
    pub passage_recompute_percent: Option<u8>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub max_message_chars: Option<usize>,
    pub messages_per_minute: Option<u32>,
    pub messages_per_minute_per_address: Option<u32>,
    pub verify_failures: Option<u32>,
    pub verify_window_minutes: Option<u64>,
    pub outbox_frames: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_connections_per_address: Option<usize>,
    pub http_concurrency: Option<usize>,
    pub http_request_timeout_seconds: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConfigError {
    pub path: String,
    pub reason: String,
}

/// Longest staff login: past it, the login's expiry could leave the
/// calendar (`OffsetDateTime + ttl` panicked at login for `1_000_000_000`).
pub const MAX_STAFF_SESSION_HOURS: u64 = 10 * 365 * 24;

/// Longest window of the failure limits: a year is already no window at all.
pub const MAX_VERIFY_WINDOW_MINUTES: u64 = 365 * 24 * 60;

impl ConfigFile {
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError { path: path.display().to_string(), reason: e.to_string() })?;
        Self::parse(path, &text)
    }

    /// The settings in `text`, the contents of the file at `path`. Values
    /// the server cannot run with are errors here rather than panics later:
    /// a zero outbox (a channel of no capacity panics at every connection)
    /// and durations past the calendar.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let error = |reason: String| ConfigError { path: path.display().to_string(), reason };
        let file: ConfigFile = toml::from_str(text).map_err(|e| error(e.to_string()))?;
        if file.server.staff_session_hours.is_some_and(|h| h > MAX_STAFF_SESSION_HOURS) {
            return Err(error(format!(
                "[server] staff_session_hours must be at most {MAX_STAFF_SESSION_HOURS} (ten years)"
            )));
        }
        if file.limits.verify_window_minutes.is_some_and(|m| m > MAX_VERIFY_WINDOW_MINUTES) {
            return Err(error(format!(
                "[limits] verify_window_minutes must be at most {MAX_VERIFY_WINDOW_MINUTES} (a year)"
            )));
        }
        if file.models.passage_recompute_percent.is_some_and(|p| p > 100) {
            return Err(error("[models] passage_recompute_percent must be at most 100".to_owned()));
        }
        if file.limits.outbox_frames == Some(0) {
            return Err(error("[limits] outbox_frames must be at least 1".to_owned()));
        }
        if let Some(embedding) = file.models.embedding.as_deref().filter(|e| !e.is_empty()) {
            shopchat_core::EmbedderChoice::parse(embedding)
                .map_err(|reason| error(format!("[models] embedding: {reason}")))?;
        }
        Ok(file)
    }

    /// Applies the file's settings over `config`.
    pub fn apply(self, config: &mut ServerConfig) {
        let ConfigFile { server, shop, models, limits } = self;
        if let Some(addr) = server.addr {
            config.addr = addr;
        }
        if let Some(dir) = server.data_dir {
            config.database = dir.join("shopchat.db");
            config.assistant.data_dir = dir;
        }
        if let Some(database) = server.database {
            config.database = database;
        }
        if let Some(origins) = server.allowed_origins {
            config.allowed_origins = origins;
        }
        if let Some(hours) = server.staff_session_hours {
            config.staff_session = Duration::from_secs(hours.saturating_mul(3600));
        }
        if server.identity_secret.is_some() {
            config.assistant.identity_secret = server.identity_secret;
        }
        if let Some(dir) = shop.dir {
            config.assistant.faq_dir = dir;
        }
        if shop.prompt.is_some() {
            config.assistant.prompt_file = shop.prompt;
        }
        if let Some(dir) = models.dir {
            config.assistant.models_dir = dir;
        }
        let choice = &mut config.assistant.models;
        for (lang, spec) in [(Language::En, models.en), (Language::Zh, models.zh)] {
            if let Some(spec) = spec {
                choice.by_language.insert(lang, spec);
            }
        }
        if let Some(chat) = models.chat {
            choice.chat = chat;
        }
        if let Some(extra) = models.extra {
            choice.extra = Some(extra).filter(|name| !shopchat_pipeline::is_none(name));
        }
        if let Some(embedding) = models.embedding {
            config.assistant.embedding_model = Some(embedding).filter(|name| !name.is_empty());
        }
        if let Some(max_tokens) = models.max_tokens {
            config.assistant.answer.max_tokens = max_tokens;
        }
        if let Some(queue) = models.queue {
            config.assistant.worker.queue_capacity = queue;
        }
        if let Some(n) = models.embedding_at_once {
            config.assistant.query_embedding.at_once = n.max(1);
        }
        if let Some(n) = models.embedding_queue {
            config.assistant.query_embedding.waiting = n;
        }
        if let Some(mb) = models.passage_cache_mb {
            config.assistant.worker.passage_cache_bytes = mb.saturating_mul(1024 * 1024);
        }
        if let Some(reuse) = models.passage_reuse {
            config.assistant.worker.passage_reuse = reuse;
        }
        if let Some(percent) = models.passage_recompute_percent {
            config.assistant.worker.passage_recompute_percent = percent;
        }
        let target = &mut config.limits;
        if let Some(chars) = limits.max_message_chars {
            target.frame.max_message_chars = chars;
        }
        if let Some(n) = limits.messages_per_minute {
            target.messages_per_minute = n;
        }
        if let Some(n) = limits.messages_per_minute_per_address {
            target.messages_per_minute_per_address = n;
        }
        if let Some(n) = limits.verify_failures {
            target.verify_failures = n;
        }
        if let Some(minutes) = limits.verify_window_minutes {
            target.verify_window = Duration::from_secs(minutes.saturating_mul(60));
        }
        if let Some(frames) = limits.outbox_frames {
            target.outbox_frames = frames;
        }
        if let Some(n) = limits.max_connections {
            target.max_connections = n;
        }
        if let Some(n) = limits.max_connections_per_address {
            target.max_connections_per_address = n;
        }
        if let Some(n) = limits.http_concurrency {
            target.http_concurrency = n.max(1);
        }
        if let Some(seconds) = limits.http_request_timeout_seconds {
            target.http_request_timeout = Duration::from_secs(seconds.max(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(text: &str) -> ServerConfig {
        let file = ConfigFile::parse(Path::new("shopchat.toml"), text).unwrap();
        let mut config = ServerConfig::standard();
        file.apply(&mut config);
        config
    }

    #[test]
    fn models_are_chosen_per_language_and_the_rest_keeps_its_defaults() {
        let config = applied(
            r#"
            [models]
            en = "smollm2-135m:q8_0"
            zh = "qwen2.5-coder-1.5b"
            "#,
        );
        let choice = &config.assistant.models;
        assert_eq!(choice.by_language[&Language::En], "smollm2-135m:q8_0");
        assert_eq!(choice.by_language[&Language::Zh], "qwen2.5-coder-1.5b");
        assert_eq!(choice.chat, "smollm2-135m");
        assert_eq!(choice.extra.as_deref(), Some("qwen2.5-coder-0.5b"));
        assert_eq!(choice.command_line, None);

        let config = applied("[models]\nzh = \"none\"\nextra = \"none\"\n");
        assert_eq!(config.assistant.models.by_language[&Language::Zh], "none");
        assert!(!config.assistant.models.by_language.contains_key(&Language::En));
        assert_eq!(config.assistant.models.extra, None);
        // An empty file changes nothing.
        assert_eq!(applied("").assistant.models, shopchat_pipeline::ModelChoice::standard());
    }

    #[test]
    fn an_unknown_language_key_is_an_error() {
        let error = toml::from_str::<ConfigFile>("[models]\nfr = \"smollm2-135m\"\n").unwrap_err();
        assert!(error.to_string().contains("unknown field `fr`"), "{error}");
    }

    #[test]
    fn a_staff_session_past_the_calendar_is_refused_not_a_panic_at_login() {
        // Login adds the session's length to now; at a billion hours that
        // left the calendar and the login handler panicked.
        for hours in ["1000000000", "18446744073709551615"] {
            let text = format!("[server]\nstaff_session_hours = {hours}\n");
            let error = ConfigFile::parse(Path::new("shopchat.toml"), &text).unwrap_err();
            assert!(error.to_string().contains("staff_session_hours"), "{error}");
        }
        let longest = format!("[server]\nstaff_session_hours = {MAX_STAFF_SESSION_HOURS}\n");
        let ttl = applied(&longest).staff_session;
        assert!(time::OffsetDateTime::now_utc().checked_add(ttl.try_into().unwrap()).is_some());
    }

    #[test]
    fn a_zero_outbox_is_refused_not_a_panic_at_every_connection() {
        let error = ConfigFile::parse(Path::new("shopchat.toml"), "[limits]\noutbox_frames = 0\n")
            .unwrap_err();
        assert!(error.to_string().contains("outbox_frames"), "{error}");
        assert_eq!(applied("[limits]\noutbox_frames = 1\n").limits.outbox_frames, 1);
    }

    #[test]
    fn a_recompute_share_past_the_whole_passage_is_refused() {
        let text = "[models]\npassage_reuse = \"moved\"\npassage_recompute_percent = 101\n";
        let error = ConfigFile::parse(Path::new("shopchat.toml"), text).unwrap_err();
        assert!(error.to_string().contains("passage_recompute_percent"), "{error}");
        let text = "[models]\npassage_reuse = \"moved\"\npassage_recompute_percent = 30\n";
        assert_eq!(applied(text).assistant.worker.passage_recompute_percent, 30);
    }

    #[test]
    fn a_huge_failure_window_is_refused_not_wrapped() {
        let text = "[limits]\nverify_window_minutes = 18446744073709551615\n";
        let error = ConfigFile::parse(Path::new("shopchat.toml"), text).unwrap_err();
        assert!(error.to_string().contains("verify_window_minutes"), "{error}");
    }

    /// The README's complete `shopchat.toml`, the base of the mutations.
    fn readme_example() -> &'static str {
        let readme = include_str!("../../../README.md");
        let start = readme.find("```toml\n[server]").expect("the README shows shopchat.toml") + 8;
        &readme[start..start + readme[start..].find("```").unwrap()]
    }

    /// What the server does with settings it accepted, without a panic:
    /// an outbox and HTTP concurrency of at least one, a login expiry
    /// inside the calendar.
    fn check_settings(text: &str) -> Result<(), proptest::test_runner::TestCaseError> {
        use proptest::prop_assert;
        let Ok(file) = ConfigFile::parse(Path::new("shopchat.toml"), text) else {
            return Ok(());
        };
        let mut config = ServerConfig::standard();
        file.apply(&mut config);
        prop_assert!(config.limits.outbox_frames >= 1);
        prop_assert!(config.limits.http_concurrency >= 1);
        let ttl = time::Duration::try_from(config.staff_session).unwrap();
        prop_assert!(time::OffsetDateTime::now_utc().checked_add(ttl).is_some());
        Ok(())
    }

    #[test]
    fn the_readme_example_is_a_valid_settings_file() {
        let config = applied(readme_example());
        assert_eq!(config.staff_session, Duration::from_secs(12 * 3600));
        assert_eq!(config.limits.outbox_frames, 256);
    }

    proptest::proptest! {
        #![proptest_config(crate::mutations::config(256))]

        #[test]
        fn any_text_is_settings_or_a_typed_error(text in crate::mutations::any_text()) {
            check_settings(&text)?;
        }

        #[test]
        fn mutated_settings_are_settings_or_a_typed_error(
            text in crate::mutations::mutated(readme_example())
        ) {
            check_settings(&text)?;
        }
    }
}
