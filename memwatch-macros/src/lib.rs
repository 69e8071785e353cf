//! Attribute macros of [memwatch-test](https://docs.rs/memwatch-test):
//! `#[leak_test]` and `#[tagged]`.
//!
//! Use them through `memwatch-test`, which re-exports them and documents
//! them; the code they emit calls `memwatch_test::__private` and nothing
//! else. They only parse, check and emit: every behaviour lives in the
//! runtime crate.

use proc_macro::TokenStream;

mod leak_test;
mod tagged;

/// Tags the allocations of a function or of the methods of an impl block.
/// See `memwatch_test::tagged`.
#[proc_macro_attribute]
pub fn tagged(args: TokenStream, item: TokenStream) -> TokenStream {
    tagged::expand(args.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Registers a leak test: its body is repeated across collection cycles by
/// the harness of `memwatch_test::main!()`. See `memwatch_test::leak_test`.
#[proc_macro_attribute]
pub fn leak_test(args: TokenStream, item: TokenStream) -> TokenStream {
    leak_test::expand(args.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
