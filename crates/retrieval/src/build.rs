//! Building a new index generation from a knowledge base.

use std::path::{Path, PathBuf};

use shopchat_core::{Language, TextEmbedder};
use tantivy::{Index, TantivyDocument};

use crate::knowledge::KnowledgeBase;
use crate::layout::{self, Manifest, FORMAT_VERSION};
use crate::passage::Passage;
use crate::schema::{register_analyzers, Fields};
use crate::vectors::VectorFile;
use crate::{Error, Result};

/// Tantivy's writer needs at least 15 MB per thread; one thread is plenty
/// for a knowledge base and leaves the other core to the server.
const WRITER_MEMORY: usize = 50_000_000;

/// Where a build has got to, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildProgress {
    Embedding {
        done: usize,
        total: usize,
    },
    Indexing {
        passages: usize,
    },
    /// `CURRENT` now points at the new generation.
    Switched {
        generation: u64,
    },
}

/// What a finished build wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildReport {
    pub generation: u64,
    pub dir: PathBuf,
    pub passages: usize,
    /// How many passages have a vector (every public one, when an embedder
    /// was given).
    pub embedded: usize,
    pub model_id: Option<String>,
}

/// Writes the knowledge base as a new generation under
/// `data_dir/index/gen-<n>/`, switches `CURRENT` to it, and removes all
/// generations but the new one and the one it replaces. Servers go on using
/// the old generation until they call [`crate::IndexHandle::reload`]. Builds
/// of the same data directory, in this process or another, wait for each
/// other (a lock on the index directory) once their vectors are computed.
///
/// With an embedder, every public passage gets a vector; order passages
/// never do, as the vector search only serves the general search.
pub fn build_index(
    kb: &KnowledgeBase,
    data_dir: &Path,
    embedder: Option<&dyn TextEmbedder>,
    progress: &mut dyn FnMut(BuildProgress),
) -> Result<BuildReport> {
    let passages = kb.passages();
    if passages.is_empty() {
        return Err(Error::EmptyKnowledgeBase);
    }
    // Embedding is the slow step and the one most likely to fail, so it runs
    // before anything is written.
    let vectors = match embedder {
        Some(embedder) => {
            // Passages in a language no embedder reads get no vector.
            let public: Vec<&Passage> = passages
                .iter()
                .filter(|p| p.kind.is_public() && embedder.supports(p.lang))
                .collect();
            let total = public.len();
            progress(BuildProgress::Embedding { done: 0, total });
            let mut report = |done| progress(BuildProgress::Embedding { done, total });
            Some(VectorFile::embed(&public, embedder, &mut report)?)
        }
        None => None,
    };

    // From here on, one build at a time per data directory.
    let _lock = layout::lock_index(data_dir)?;
    let previous = match layout::read_current(data_dir) {
        Ok(generation) => Some(generation),
        // No index yet, or a broken one that this build replaces.
        Err(
            Error::IndexMissing { .. } | Error::IndexCorrupt { .. } | Error::IndexOutdated { .. },
        ) => None,
        Err(e) => return Err(e),
    };
    let (generation, dir) = layout::create_generation(data_dir)?;
    if let Err(e) = write_generation(&dir, passages, vectors.as_ref(), progress) {
        // Best effort: a leftover directory is ignored by readers and
        // removed by the next successful build.
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    layout::switch_current(data_dir, generation)?;
    progress(BuildProgress::Switched { generation });
    let keep: Vec<u64> = std::iter::once(generation).chain(previous).collect();
    layout::remove_generations_except(data_dir, &keep)?;

    Ok(BuildReport {
        generation,
        dir,
        passages: passages.len(),
        embedded: vectors.as_ref().map_or(0, |v| v.ids.len()),
        model_id: vectors.map(|v| v.model_id),
    })
}

fn write_generation(
    dir: &Path,
    passages: &[Passage],
    vectors: Option<&VectorFile>,
    progress: &mut dyn FnMut(BuildProgress),
) -> Result<()> {
    let tantivy_dir = layout::tantivy_dir(dir);
    std::fs::create_dir(&tantivy_dir)
        .map_err(Error::io(format!("cannot create {}", tantivy_dir.display())))?;
    let (schema, fields) = Fields::schema();
    let index = Index::create_in_dir(&tantivy_dir, schema)
        .map_err(Error::index(format!("cannot create an index in {}", tantivy_dir.display())))?;
    register_analyzers(&index);
    let mut writer = index
        .writer_with_num_threads(1, WRITER_MEMORY)
        .map_err(Error::index("cannot start the index writer"))?;
    for passage in passages {
        writer
            .add_document(document(&fields, passage))
            .map_err(Error::index("cannot add a passage"))?;
    }
    progress(BuildProgress::Indexing { passages: passages.len() });
    writer.commit().map_err(Error::index("cannot commit the index"))?;
    writer.wait_merging_threads().map_err(Error::index("cannot finish the index"))?;

    if let Some(vectors) = vectors {
        vectors.write(&layout::vectors_path(dir))?;
    }
    let manifest = Manifest {
        format: FORMAT_VERSION,
        passages: passages.len(),
        model_id: vectors.map(|v| v.model_id.clone()),
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest always serializes");
    layout::write_synced(&layout::manifest_path(dir), &json)?;
    layout::sync_dir(dir)
}

fn document(fields: &Fields, passage: &Passage) -> TantivyDocument {
    let mut doc = TantivyDocument::default();
    doc.add_text(fields.id, &passage.id);
    doc.add_text(fields.kind, passage.kind.as_str());
    doc.add_text(fields.lang, passage.lang.code());
    if let Some(customer_id) = &passage.customer_id {
        doc.add_text(fields.customer_id, customer_id);
    }
    doc.add_text(fields.title(passage.lang), &passage.title);
    doc.add_text(fields.text(passage.lang), &passage.text);
    if passage.lang == Language::Zh {
        doc.add_text(fields.title_zh_bigram, &passage.title);
        doc.add_text(fields.text_zh_bigram, &passage.text);
    }
    // Tags are words shops chose to describe an entry: as good as its text.
    for tag in &passage.tags {
        doc.add_text(fields.text(passage.lang), tag);
    }
    let stored = serde_json::to_string(passage).expect("a passage always serializes");
    doc.add_text(fields.passage, stored);
    doc
}
