//! Our matrix kernels on the real models: every kernel set gives the same
//! logits bit for bit (so no answer depends on the CPU), and the products
//! stay close to candle's on the same weights.

use candle_core::quantized::{gguf_file, QMatMul};
use candle_core::{Device, Module, Tensor};
use shopchat_inference::KernelSet;
use shopchat_kernels::{Activations, Format, QuantizedMatrix, ThreadPool};

use super::*;

fn load_with(spec: &str, kernels: KernelSet) -> LanguageModel {
    let config = LoadConfig { max_context: Some(256), kernels: Some(kernels) };
    LanguageModel::load(&model_path(spec), &config).unwrap()
}

/// Logits after a short prompt, then after each of a few greedy steps.
fn greedy_logits(model: &LanguageModel, steps: usize) -> (Vec<u32>, Vec<Vec<f32>>) {
    let mut tokens =
        model.tokenizer().encode_trusted("Returns are free within 30 days if").unwrap();
    let transformer = model.transformer();
    let mut cache = transformer.new_cache();
    let mut input = tokens.clone();
    let mut all = Vec::new();
    for _ in 0..steps {
        let logits = transformer.forward(&input, &mut cache).unwrap().to_vec1::<f32>().unwrap();
        let next =
            (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap() as u32;
        all.push(logits);
        tokens.push(next);
        input = vec![next];
    }
    (tokens, all)
}

fn assert_same_bits(spec: &str, steps: usize) {
    let scalar = load_with(spec, KernelSet::Scalar);
    let report = scalar.transformer().kernels();
    assert_eq!(report.set, KernelSet::Scalar);
    assert!(report.ours > report.matrices / 2, "{spec}: {report}");
    let (scalar_tokens, scalar_logits) = greedy_logits(&scalar, steps);
    for set in KernelSet::supported() {
        let fast = load_with(spec, set);
        let (tokens, logits) = greedy_logits(&fast, steps);
        assert_eq!(tokens, scalar_tokens, "{spec}: {set} chose other tokens");
        for (step, (a, b)) in scalar_logits.iter().zip(&logits).enumerate() {
            let same = a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{spec}: {set} logits differ from scalar at step {step}");
        }
    }
}

#[test]
fn every_kernel_set_gives_smollm2_the_same_logits() {
    assert_same_bits("smollm2-135m:q8_0", 6);
}

#[test]
fn every_kernel_set_gives_smollm2_q4_1_the_same_logits() {
    assert_same_bits("smollm2-135m", 4);
}

#[test]
fn every_kernel_set_gives_qwen_the_same_logits() {
    // Q5_0, Q8_0, Q4_K and Q6_K matrices.
    assert_same_bits("qwen2.5-coder-0.5b", 3);
}

#[test]
fn products_on_real_weights_are_as_close_to_exact_as_candles() {
    let cases = [
        ("smollm2-135m:q8_0", "blk.3.ffn_down.weight", Format::Q8_0),
        ("smollm2-135m", "blk.5.attn_q.weight", Format::Q4_1),
        ("qwen2.5-coder-0.5b", "blk.0.ffn_up.weight", Format::Q5_0),
        ("qwen2.5-coder-0.5b", "blk.0.ffn_down.weight", Format::Q6K),
        ("qwen2.5-coder-0.5b", "blk.11.ffn_down.weight", Format::Q4K),
    ];
    let pool = ThreadPool::new(2);
    let worst =
        |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    for (spec, name, format) in cases {
        let path = model_path(spec);
        let mut file = std::fs::File::open(&path).unwrap();
        let content = gguf_file::Content::read(&mut file).unwrap();
        let tensor = content.tensor(&mut file, name, &Device::Cpu).unwrap();
        let (rows, cols) = tensor.shape().dims2().unwrap();
        let bytes = tensor.data().unwrap().into_owned();
        let ours = QuantizedMatrix::from_bytes(format, rows, cols, &bytes).unwrap();
        let dequantized = tensor.dequantize(&Device::Cpu).unwrap();
        let candle = QMatMul::from_qtensor(tensor).unwrap();
        for tokens in [1, 5] {
            let input: Vec<f32> = (0..tokens * cols)
                .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.7)
                .collect();
            let x = Tensor::from_vec(input.clone(), (tokens, cols), &Device::Cpu).unwrap();
            let flat = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            // The weights as they are, times the input unquantized.
            let exact = flat(x.matmul(&dequantized.t().unwrap()).unwrap());
            let by_candle = flat(candle.forward(&x).unwrap());
            let candle_error = worst(&by_candle, &exact);
            let scale = exact.iter().fold(0f32, |m, v| m.max(v.abs()));
            let acts = Activations::quantize(&input, tokens, cols, format.activation_layout());
            for set in KernelSet::supported() {
                let mut got = vec![0f32; tokens * rows];
                ours.matmul(&acts, &mut got, set, &pool).unwrap();
                // Both engines quantize the input to int8, in blocks of 32
                // for the 32-value formats and of 256 for the k-quants.
                let error = worst(&got, &exact);
                assert!(
                    error <= candle_error * 1.25 + scale * 1e-5,
                    "{spec} {name} {set}: off by {error}, candle by {candle_error} (scale {scale})"
                );
                assert!(
                    error <= scale * 0.02,
                    "{spec} {name} {set}: off by {error} (scale {scale})"
                );
            }
        }
    }
}
