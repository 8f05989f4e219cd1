//! Connection tests: a scripted peer against the real engine.
