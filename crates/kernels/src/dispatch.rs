//! Which kernel set runs: the fastest the CPU has, or the one
//! `SHOPCHAT_KERNELS` asks for.

use std::fmt;
use std::str::FromStr;

/// A family of kernels. All compute the same bits (see the crate header);
/// they differ only in speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelSet {
    /// Plain Rust, any CPU.
    Scalar,
    /// x86-64 with AVX2, FMA and F16C (every AVX2 CPU has the other two).
    Avx2,
}

#[derive(Debug, thiserror::Error)]
pub enum KernelSetError {
    #[error("unknown kernel set `{0}` (expected auto, scalar or avx2)")]
    Unknown(String),
    #[error("this CPU cannot run the {0} kernels")]
    Unsupported(KernelSet),
}

/// The variable that forces a kernel set.
pub const KERNELS_VARIABLE: &str = "SHOPCHAT_KERNELS";

impl KernelSet {
    /// The fastest set this CPU runs.
    pub fn detect() -> KernelSet {
        if KernelSet::Avx2.is_supported() {
            KernelSet::Avx2
        } else {
            KernelSet::Scalar
        }
    }

    /// `SHOPCHAT_KERNELS` if set (`auto`, `scalar`, `avx2`), else [`detect`].
    ///
    /// [`detect`]: KernelSet::detect
    pub fn from_env() -> Result<KernelSet, KernelSetError> {
        match std::env::var(KERNELS_VARIABLE) {
            Ok(value) if !value.trim().is_empty() && value.trim() != "auto" => {
                let set: KernelSet = value.trim().parse()?;
                if set.is_supported() {
                    Ok(set)
                } else {
                    Err(KernelSetError::Unsupported(set))
                }
            }
            _ => Ok(KernelSet::detect()),
        }
    }

    pub fn is_supported(self) -> bool {
        match self {
            KernelSet::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            KernelSet::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                    && std::arch::is_x86_feature_detected!("f16c")
            }
            #[cfg(not(target_arch = "x86_64"))]
            KernelSet::Avx2 => false,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KernelSet::Scalar => "scalar",
            KernelSet::Avx2 => "avx2",
        }
    }

    /// Every set this CPU runs, scalar first.
    pub fn supported() -> Vec<KernelSet> {
        [KernelSet::Scalar, KernelSet::Avx2].into_iter().filter(|k| k.is_supported()).collect()
    }
}

impl fmt::Display for KernelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KernelSet {
    type Err = KernelSetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "scalar" => Ok(KernelSet::Scalar),
            "avx2" => Ok(KernelSet::Avx2),
            other => Err(KernelSetError::Unknown(other.to_owned())),
        }
    }
}
