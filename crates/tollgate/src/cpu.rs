//! The CPU features the binary was compiled for, checked before anything else runs.

/// The instruction-set extensions this build uses beyond the x86-64 baseline that the running
/// CPU lacks; a binary built for x86-64-v3 then stops with their names instead of dying on an
/// illegal instruction somewhere later.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
pub fn missing_features() -> Vec<&'static str> {
    let mut missing = Vec::new();
    macro_rules! check {
        ($($feature:tt),*) => {$(
            if cfg!(target_feature = $feature) && !std::arch::is_x86_feature_detected!($feature) {
                missing.push($feature);
            }
        )*};
    }
    check!(
        "sse3",
        "ssse3",
        "sse4.1",
        "sse4.2",
        "popcnt",
        "avx",
        "avx2",
        "bmi1",
        "bmi2",
        "fma",
        "lzcnt",
        "movbe",
        "f16c",
        "pclmulqdq"
    );
    missing
}

/// Other architectures have no compile-time features to check.
#[cfg(not(target_arch = "x86_64"))]
pub fn missing_features() -> Vec<&'static str> {
    Vec::new()
}
