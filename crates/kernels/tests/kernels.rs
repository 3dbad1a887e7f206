//! Every kernel set against the scalar one, bit for bit, on random blocks;
//! the scalar one against a plain f64 product of the dequantized weights.

use half::f16;
use proptest::prelude::*;
use shopchat_kernels::{
    ActivationLayout, Activations, Format, KernelSet, QuantizedMatrix, ThreadPool,
};

const FORMATS: [Format; 6] =
    [Format::Q4_0, Format::Q4_1, Format::Q5_0, Format::Q8_0, Format::Q4K, Format::Q6K];

/// One block's bytes from a scale and random payload bytes (Q4_1's offset
/// is the scale's negative half, so weights take both signs).
fn block_bytes(format: Format, scale: f32, payload: &[u8]) -> Vec<u8> {
    let f16_bytes = |v: f32| f16::from_f32(v).to_bits().to_le_bytes();
    match format {
        // d, dmin, then six-bit scales and nibbles (kept small: d * 63 * 15).
        Format::Q4K => {
            let mut bytes = f16_bytes(scale / 64.0).to_vec();
            bytes.extend_from_slice(&f16_bytes(scale.abs() / 32.0));
            bytes.extend_from_slice(&payload[..140]);
            return bytes;
        }
        // Six-bit values, signed scales, then d last.
        Format::Q6K => {
            let mut bytes = payload[..208].to_vec();
            bytes.extend_from_slice(&f16_bytes(scale / 128.0));
            return bytes;
        }
        _ => {}
    }
    let mut bytes = f16_bytes(scale).to_vec();
    let mut rest = format.block_bytes() - 2;
    if format == Format::Q4_1 {
        bytes.extend_from_slice(&f16::from_f32(-scale * 7.5).to_bits().to_le_bytes());
        rest -= 2;
    }
    bytes.extend_from_slice(&payload[..rest]);
    bytes
}

/// The weights of one block, read straight from the GGUF description of the
/// format (independent of the crate's own unpacking).
fn dequantize(format: Format, bytes: &[u8]) -> Vec<f64> {
    let d = f64::from(f16::from_bits(u16::from_le_bytes([bytes[0], bytes[1]])).to_f32());
    match format {
        Format::Q8_0 => bytes[2..34].iter().map(|&q| d * f64::from(q as i8)).collect(),
        Format::Q4_0 => {
            let qs = &bytes[2..18];
            let low = qs.iter().map(|q| i32::from(q & 15) - 8);
            let high = qs.iter().map(|q| i32::from(q >> 4) - 8);
            low.chain(high).map(|q| d * f64::from(q)).collect()
        }
        Format::Q4_1 => {
            let m = f64::from(f16::from_bits(u16::from_le_bytes([bytes[2], bytes[3]])).to_f32());
            let qs = &bytes[4..20];
            let low = qs.iter().map(|q| q & 15);
            let high = qs.iter().map(|q| q >> 4);
            low.chain(high).map(|q| d * f64::from(q) + m).collect()
        }
        Format::Q4K => {
            let dmin = f64::from(f16::from_bits(u16::from_le_bytes([bytes[2], bytes[3]])).to_f32());
            let scales = &bytes[4..16];
            // ggml's get_scale_min_k4.
            let scale_min = |j: usize| -> (f64, f64) {
                let (sc, m) = if j < 4 {
                    (scales[j] & 63, scales[j + 4] & 63)
                } else {
                    (
                        (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4),
                        (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4),
                    )
                };
                (d * f64::from(sc), dmin * f64::from(m))
            };
            let mut out = Vec::with_capacity(256);
            for pair in 0..4 {
                let q = &bytes[16 + 32 * pair..16 + 32 * (pair + 1)];
                let (d1, m1) = scale_min(2 * pair);
                let (d2, m2) = scale_min(2 * pair + 1);
                out.extend(q.iter().map(|&q| d1 * f64::from(q & 0xF) - m1));
                out.extend(q.iter().map(|&q| d2 * f64::from(q >> 4) - m2));
            }
            out
        }
        Format::Q6K => {
            let d =
                f64::from(f16::from_bits(u16::from_le_bytes([bytes[208], bytes[209]])).to_f32());
            let mut out = vec![0f64; 256];
            for half in 0..2 {
                let ql = &bytes[64 * half..];
                let qh = &bytes[128 + 32 * half..];
                let sc = |i: usize| f64::from(bytes[192 + 8 * half + i] as i8);
                for l in 0..32 {
                    let is = l / 16;
                    let q =
                        |low: u8, shift: u32| i32::from(low | (((qh[l] >> shift) & 3) << 4)) - 32;
                    let y = &mut out[128 * half..];
                    y[l] = d * sc(is) * f64::from(q(ql[l] & 0xF, 0));
                    y[l + 32] = d * sc(is + 2) * f64::from(q(ql[l + 32] & 0xF, 2));
                    y[l + 64] = d * sc(is + 4) * f64::from(q(ql[l] >> 4, 4));
                    y[l + 96] = d * sc(is + 6) * f64::from(q(ql[l + 32] >> 4, 6));
                }
            }
            out
        }
        Format::Q5_0 => {
            let qh = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
            let qs = &bytes[6..22];
            (0..32)
                .map(|j| {
                    let nibble = if j < 16 { qs[j] & 15 } else { qs[j - 16] >> 4 };
                    let fifth = ((qh >> j) & 1) as u8;
                    d * f64::from(i32::from(nibble | (fifth << 4)) - 16)
                })
                .collect()
        }
    }
}

#[derive(Debug)]
struct Case {
    format: Format,
    rows: usize,
    cols: usize,
    tokens: usize,
    bytes: Vec<u8>,
    input: Vec<f32>,
}

fn case() -> impl Strategy<Value = Case> {
    (0..FORMATS.len(), 1usize..11, 1usize..4, 1usize..9).prop_flat_map(
        |(f, rows, blocks, tokens)| {
            let format = FORMATS[f];
            let n_blocks = rows * blocks;
            (
                prop::collection::vec(
                    (-1.0f32..1.0, prop::collection::vec(any::<u8>(), 208)),
                    n_blocks,
                ),
                prop::collection::vec(-4.0f32..4.0, tokens * blocks * format.block_values()),
            )
                .prop_map(move |(raw, input)| Case {
                    format,
                    rows,
                    cols: blocks * format.block_values(),
                    tokens,
                    bytes: raw.iter().flat_map(|(s, p)| block_bytes(format, *s, p)).collect(),
                    input,
                })
        },
    )
}

fn product(case: &Case, kernels: KernelSet, pool: &ThreadPool) -> Vec<f32> {
    let matrix =
        QuantizedMatrix::from_bytes(case.format, case.rows, case.cols, &case.bytes).unwrap();
    let layout = case.format.activation_layout();
    let acts = Activations::quantize(&case.input, case.tokens, case.cols, layout);
    let mut out = vec![f32::NAN; case.tokens * case.rows];
    matrix.matmul(&acts, &mut out, kernels, pool).unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn every_kernel_set_computes_the_scalar_bits(case in case()) {
        let pool = ThreadPool::new(3);
        let scalar = product(&case, KernelSet::Scalar, &pool);
        for kernels in KernelSet::supported() {
            let fast = product(&case, kernels, &pool);
            let same = scalar.iter().zip(&fast).all(|(a, b)| a.to_bits() == b.to_bits());
            prop_assert!(same, "{kernels} differs on {:?}: {scalar:?} vs {fast:?}", case.format);
        }
    }

    #[test]
    fn the_product_is_the_dot_product_of_the_dequantized_weights(case in case()) {
        let out = product(&case, KernelSet::Scalar, &ThreadPool::new(1));
        let block = case.format.block_bytes();
        let blocks_per_row = case.cols / case.format.block_values();
        for r in 0..case.rows {
            let row: Vec<f64> = case.bytes[r * blocks_per_row * block..(r + 1) * blocks_per_row * block]
                .chunks(block)
                .flat_map(|b| dequantize(case.format, b))
                .collect();
            for t in 0..case.tokens {
                let x = &case.input[t * case.cols..(t + 1) * case.cols];
                let exact: f64 = row.iter().zip(x).map(|(w, &x)| w * f64::from(x)).sum();
                // Each activation is off by at most half its block's step.
                let n = case.format.activation_layout().block_values();
                let bound: f64 = row.chunks(n).zip(x.chunks(n)).map(|(w, x)| {
                    let step = x.iter().fold(0f32, |m, v| m.max(v.abs())) as f64 / 127.0;
                    w.iter().map(|w| w.abs()).sum::<f64>() * step * 0.51 + 1e-3
                }).sum();
                let got = f64::from(out[t * case.rows + r]);
                prop_assert!((got - exact).abs() <= bound, "row {r} token {t}: {got} vs {exact} (±{bound})");
            }
        }
    }
}

#[test]
fn large_shapes_split_over_threads_and_chunks_match_one_thread() {
    // More tokens than a chunk, rows that are no multiple of the tile.
    let (rows, cols, tokens) = (203, 512, 101);
    let mut state = 0x2545_f491_u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    for format in FORMATS {
        let bytes: Vec<u8> = (0..rows * cols / format.block_values())
            .flat_map(|_| {
                let payload: Vec<u8> = (0..208).map(|_| next() as u8).collect();
                block_bytes(format, (next() % 1000) as f32 / 1000.0, &payload)
            })
            .collect();
        let input: Vec<f32> =
            (0..tokens * cols).map(|_| (next() % 2001) as f32 / 500.0 - 2.0).collect();
        let case = Case { format, rows, cols, tokens, bytes, input };
        let one = product(&case, KernelSet::Scalar, &ThreadPool::new(1));
        for kernels in KernelSet::supported() {
            let many = product(&case, kernels, &ThreadPool::new(3));
            assert!(
                one.iter().zip(&many).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{format:?} {kernels}"
            );
        }
    }
}

#[test]
fn shapes_that_do_not_fit_are_refused_with_the_reason() {
    let bytes = vec![0u8; 34];
    let err = QuantizedMatrix::from_bytes(Format::Q8_0, 1, 48, &bytes).err().unwrap();
    assert!(err.to_string().contains("not whole"), "{err}");
    let err = QuantizedMatrix::from_bytes(Format::Q8_0, 2, 32, &bytes).err().unwrap();
    assert!(err.to_string().contains("needs 68 bytes, got 34"), "{err}");
    let matrix = QuantizedMatrix::from_bytes(Format::Q8_0, 1, 32, &bytes).unwrap();
    let pool = ThreadPool::new(1);
    let acts = Activations::quantize(&[0.5; 64], 1, 64, ActivationLayout::Blocks32);
    let err = matrix.matmul(&acts, &mut [0.0], KernelSet::Scalar, &pool).err().unwrap();
    assert!(err.to_string().contains("64 columns, the matrix 32"), "{err}");
    let acts = Activations::quantize(&[0.5; 64], 2, 32, ActivationLayout::Blocks32);
    let err = matrix.matmul(&acts, &mut [0.0], KernelSet::Scalar, &pool).err().unwrap();
    assert!(err.to_string().contains("holds 1 values, 2 are needed"), "{err}");
    // A k-quant matrix refuses activations in blocks of 32.
    let bytes = vec![0u8; 144];
    let matrix = QuantizedMatrix::from_bytes(Format::Q4K, 1, 256, &bytes).unwrap();
    let acts = Activations::quantize(&[0.5; 256], 1, 256, ActivationLayout::Blocks32);
    let err = matrix.matmul(&acts, &mut [0.0], KernelSet::Scalar, &pool).err().unwrap();
    assert!(err.to_string().contains("quantized as Blocks256, not Blocks32"), "{err}");
}

#[test]
fn a_kernel_set_is_named_and_an_unknown_one_refused() {
    assert_eq!("AVX2".parse::<KernelSet>().unwrap(), KernelSet::Avx2);
    assert_eq!("scalar".parse::<KernelSet>().unwrap(), KernelSet::Scalar);
    assert!("neon"
        .parse::<KernelSet>()
        .unwrap_err()
        .to_string()
        .contains("unknown kernel set `neon`"));
    assert!(KernelSet::supported().contains(&KernelSet::detect()));
}
