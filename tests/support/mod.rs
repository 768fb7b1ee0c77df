#![allow(dead_code)]
pub mod apiserver;
pub mod operator;
pub mod services;
