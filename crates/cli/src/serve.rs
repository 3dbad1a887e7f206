//! `shopchat serve` and `shopchat staff`.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use shopchat_server::{ConfigFile, Server, ServerConfig};
use shopchat_store::{SqliteStore, Store};

#[derive(Args)]
pub struct ServeArgs {
    /// Settings file; `shopchat.toml` in the current directory is read when present.
    #[arg(long, env = "SHOPCHAT_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "SHOPCHAT_ADDR")]
    addr: Option<SocketAddr>,
    /// Where the index and the database live (created on first start).
    #[arg(long, env = "SHOPCHAT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The shop's files: shop.toml, faq/, policies/, orders.json.
    #[arg(long, env = "SHOPCHAT_SHOP_DIR")]
    shop: Option<PathBuf>,
    /// The chat model (a manifest name, name:q8_0, or a .gguf path) for
    /// every language it writes, over `[models] en`/`zh`; `none` for none.
    #[arg(long, env = "SHOPCHAT_MODEL")]
    model: Option<String>,
    /// A prompt template file (default: prompts/default.toml, built in).
    #[arg(long, env = "SHOPCHAT_PROMPT")]
    prompt: Option<PathBuf>,
    /// The secret that signs shop customers' identities (HMAC-SHA256).
    #[arg(long, env = "SHOPCHAT_IDENTITY_SECRET", hide_env_values = true)]
    identity_secret: Option<String>,
}

/// Settings: defaults, then the file, then environment and flags.
pub fn server_config(models_dir: PathBuf, args: &ServeArgs) -> Result<ServerConfig> {
    let mut config = ServerConfig::standard();
    config.assistant.models_dir = models_dir;
    let file = match &args.config {
        Some(path) => Some(path.clone()),
        None => Some(PathBuf::from("shopchat.toml")).filter(|p| p.is_file()),
    };
    if let Some(path) = file {
        ConfigFile::read(&path)?.apply(&mut config);
        eprintln!("settings from {}", path.display());
    }
    if let Some(addr) = args.addr {
        config.addr = addr;
    }
    if let Some(dir) = &args.data_dir {
        config.database = dir.join("shopchat.db");
        config.assistant.data_dir = dir.clone();
    }
    if let Some(dir) = &args.shop {
        config.assistant.faq_dir = dir.clone();
    }
    if let Some(model) = &args.model {
        config.assistant.models.command_line = Some(model.clone());
    }
    if args.prompt.is_some() {
        config.assistant.prompt_file = args.prompt.clone();
    }
    if let Some(name) = crate::knowledge::chosen_embedding_model() {
        config.assistant.embedding_model = Some(name.to_owned());
    }
    if args.identity_secret.is_some() {
        config.assistant.identity_secret = args.identity_secret.clone();
    }
    Ok(config)
}

pub fn serve(models_dir: PathBuf, args: ServeArgs) -> Result<()> {
    let config = server_config(models_dir, &args)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        eprintln!("loading the models and the index…");
        let server = Server::start(config).await?;
        if let shopchat_pipeline::IndexStatus::Built { passages, .. } = server.index_status() {
            eprintln!("built the search index: {passages} passages");
        }
        let addr = server.local_addr();
        let models: Vec<String> = server
            .assistant()
            .models()
            .iter()
            .map(|m| {
                let languages: Vec<&str> = m.languages.iter().map(|l| l.code()).collect();
                format!("{} ({})", m.name, languages.join(", "))
            })
            .collect();
        if models.is_empty() {
            eprintln!("answering without a model: from passage text");
        } else {
            eprintln!("answering with {}", models.join(" and "));
        }
        println!("ShopChat is serving {} at http://{addr}/", server.assistant().shop_name());
        println!("Press Ctrl-C to stop.");
        server
            .run_until(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        eprintln!("stopped");
        Ok(())
    })
}

#[derive(Subcommand)]
pub enum StaffCommand {
    /// Create a staff account. The password is read from standard input
    /// (one line) or from SHOPCHAT_STAFF_PASSWORD.
    Add {
        name: String,
        #[arg(long, env = "SHOPCHAT_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
}

pub fn staff(command: StaffCommand) -> Result<()> {
    match command {
        StaffCommand::Add { name, data_dir } => {
            let password = match std::env::var("SHOPCHAT_STAFF_PASSWORD") {
                Ok(password) => password,
                Err(_) => {
                    eprintln!(
                        "password for {name} (at least {} characters):",
                        shopchat_store::MIN_PASSWORD_CHARS
                    );
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line).context("reading the password")?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            if password.is_empty() {
                bail!("no password given");
            }
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            let store = SqliteStore::open(&data_dir.join("shopchat.db"))?;
            store.add_staff(&name, &password)?;
            println!("staff account {name} created");
            Ok(())
        }
    }
}
