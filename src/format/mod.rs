//! File formats: each knows its bytes and nothing about activations.

pub mod csv;
pub mod npy;
pub mod npz;
