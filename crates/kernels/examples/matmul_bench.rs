//! Times one matrix product per format at the shapes of Qwen2.5-1.5B's
//! feed-forward matrices, for one token (decoding) and sixteen (a prefill
//! tile), on random blocks:
//!
//! ```sh
//! cargo run --release -p shopchat-kernels --example matmul_bench
//! SHOPCHAT_KERNELS=scalar cargo run --release -p shopchat-kernels --example matmul_bench
//! ```

use std::time::Instant;

use shopchat_kernels::{Activations, Format, KernelSet, QuantizedMatrix, ThreadPool};

fn main() {
    let kernels = KernelSet::from_env().expect("a kernel set this CPU runs");
    let pool = ThreadPool::new(2);
    let mut state = 0x2545_f491_u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    println!("kernels: {kernels}, 2 threads");
    let shapes = [
        (Format::Q4K, 8960, 1536),
        (Format::Q6K, 1536, 8960),
        (Format::Q5_0, 8960, 1536),
        (Format::Q8_0, 8960, 1536),
    ];
    for (format, rows, cols) in shapes {
        let blocks = rows * cols / format.block_values();
        let size = format.block_bytes();
        let mut bytes: Vec<u8> = (0..blocks * size).map(|_| next() as u8).collect();
        // Random bytes would make some f16 scales infinite or NaN: give
        // every block small ones (the k-quants' d and dmin, Q6K's d last).
        let small = half::f16::from_f32(0.01).to_bits().to_le_bytes();
        for block in bytes.chunks_mut(size) {
            let scales: &[usize] = match format {
                Format::Q4K => &[0, 2],
                Format::Q6K => &[208],
                Format::Q4_1 => &[0, 2],
                _ => &[0],
            };
            for &at in scales {
                block[at..at + 2].copy_from_slice(&small);
            }
        }
        let matrix = QuantizedMatrix::from_bytes(format, rows, cols, &bytes).expect("whole blocks");
        for tokens in [1usize, 16] {
            let input: Vec<f32> =
                (0..tokens * cols).map(|_| (next() % 2001) as f32 / 500.0 - 2.0).collect();
            let acts = Activations::quantize(&input, tokens, cols, format.activation_layout());
            let mut out = vec![0f32; tokens * rows];
            let mut product =
                || matrix.matmul(&acts, &mut out, kernels, &pool).expect("shapes fit");
            for _ in 0..3 {
                product();
            }
            let repeats = if tokens == 1 { 200 } else { 20 };
            let start = Instant::now();
            for _ in 0..repeats {
                product();
            }
            let seconds = start.elapsed().as_secs_f64() / repeats as f64;
            println!(
                "{format:?} {rows}×{cols}, {tokens:>2} token(s): {:.3} ms, {:.1} GB/s of weights",
                seconds * 1e3,
                (blocks * size) as f64 / seconds / 1e9
            );
        }
    }
}
