//! The server under test: its configuration, the index built once per run,
//! and polling.

use super::*;

pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The demo shop with SmolLM2 only, its index in `data_dir`.
pub(crate) fn assistant_config(data_dir: &Path) -> AssistantConfig {
    let mut config = AssistantConfig::standard();
    config.faq_dir = workspace().join("faq");
    config.models_dir = workspace().join("models");
    config.data_dir = data_dir.to_path_buf();
    config.models.extra = None;
    config
}

/// The demo shop's index, built once per test run (embedding every passage
/// takes a while) by the same code the server runs at its first start.
pub(crate) fn prebuilt_index() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("server-tests-index");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (assistant, status) =
            Assistant::load(&assistant_config(&dir)).expect("the demo shop and models load");
        assert!(matches!(status, IndexStatus::Built { .. }), "{status:?}");
        drop(assistant);
        dir
    })
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A running server with its own data directory and database.
pub(crate) struct TestServer {
    pub(crate) server: Server,
    pub(crate) addr: SocketAddr,
    pub(crate) data_dir: PathBuf,
    pub(crate) _dir: TempDir,
}

impl TestServer {
    pub(crate) async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        copy_dir(&prebuilt_index().join("index"), &data_dir.join("index"));
        let mut config =
            ServerConfig::new(assistant_config(&data_dir), dir.path().join("shopchat.db"));
        config.addr = "127.0.0.1:0".parse().unwrap();
        configure(&mut config);
        let server = Server::start(config).await.expect("the server starts");
        let addr = server.local_addr();
        TestServer { server, addr, data_dir, _dir: dir }
    }

    pub(crate) async fn shutdown(self) {
        tokio::time::timeout(Duration::from_secs(30), self.server.shutdown())
            .await
            .expect("the server shuts down in time")
            .expect("the server shuts down cleanly");
    }

    pub(crate) async fn store<T: Send + 'static>(
        &self,
        query: impl FnOnce(&dyn Store) -> T + Send + 'static,
    ) -> T {
        let store = self.server.store();
        tokio::task::spawn_blocking(move || query(store.as_ref())).await.unwrap()
    }

    pub(crate) async fn transcript(&self, conversation: &str) -> Transcript {
        let id = ConversationId::from(conversation);
        self.store(move |store| store.transcript(&id))
            .await
            .expect("the store answers")
            .unwrap_or_else(|| panic!("no conversation {conversation}"))
    }

    pub(crate) async fn returns_for_order(&self, order: &str) -> Vec<shopchat_store::ReturnRecord> {
        let order = order.to_owned();
        self.store(move |store| store.returns_for_order(&order)).await.expect("the store answers")
    }

    /// The answer `seq` once it is no longer streaming.
    pub(crate) async fn finished_answer(&self, conversation: &str, seq: u64) -> StoredMessage {
        poll("the answer to be finished in the store", move || async move {
            let transcript = self.transcript(conversation).await;
            let message = message_at(&transcript, seq).clone();
            (message.state != MessageState::Streaming).then_some(message)
        })
        .await
    }

    pub(crate) async fn add_staff(&self) {
        self.store(|store| store.add_staff(STAFF_NAME, STAFF_PASSWORD))
            .await
            .expect("the staff account is created");
    }

    /// The index generation `CURRENT` points to.
    pub(crate) fn index_generation(&self) -> u64 {
        let current = std::fs::read_to_string(self.data_dir.join("index/CURRENT")).unwrap();
        current.trim().trim_start_matches("gen-").parse().unwrap()
    }
}

pub(crate) fn message_at(transcript: &Transcript, seq: u64) -> &StoredMessage {
    transcript
        .messages
        .iter()
        .find(|m| u64::from(m.seq) == seq)
        .unwrap_or_else(|| panic!("no message {seq} in {transcript:#?}"))
}

/// Calls `probe` every 100 ms until it gives a value, for up to 10 seconds.
pub(crate) async fn poll<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
