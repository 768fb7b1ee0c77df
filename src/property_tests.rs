//! The one configuration of the crate's property tests: bounded and
//! deterministic (a fixed seed, nothing persisted), so the normal test
//! command stays fast and every run checks the same cases.

use proptest::test_runner::{Config, RngSeed};

/// 256 cases from a fixed seed.
pub(crate) fn config() -> Config {
    Config { cases: 256, failure_persistence: None, rng_seed: RngSeed::Fixed(0x6b75_6265), ..Config::default() }
}
