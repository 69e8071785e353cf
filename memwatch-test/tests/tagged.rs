//! `#[tagged]` on impl blocks, functions and async functions.

mod common;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use memwatch_test::{tagged, Alloc, HeapDiff};

#[global_allocator]
static ALLOC: Alloc = Alloc::system();

fn allocated_under(diff: &memwatch_test::Diff, what: &str) -> (u64, i64) {
    diff.change
        .details
        .iter()
        .find(|r| r.what == what)
        .map_or((0, 0), |r| (r.allocated, r.size_bytes))
}

struct LeakingClass {
    items: Vec<u64>,
}

#[tagged]
impl LeakingClass {
    fn new() -> Self {
        LeakingClass { items: Vec::new() }
    }

    fn add(&mut self, n: u64) -> Result<usize, String> {
        if n == 0 {
            return Err("zero".to_owned());
        }
        self.items.push(n);
        Ok(self.items.len())
    }
}

trait Render {
    fn render(&self) -> String;
}

#[tagged]
impl<T: std::fmt::Debug> Render for Wrapper<T> {
    fn render(&self) -> String {
        format!("{:?}", self.0)
    }
}

struct Wrapper<T>(T);

#[tagged]
fn make_buffer(n: usize) -> Vec<u8> {
    vec![0; n]
}

#[tagged("custom-name")]
fn renamed() -> Box<u32> {
    Box::new(5)
}

#[tagged]
async fn fetch(n: usize) -> Vec<u8> {
    let first = vec![1u8; n];
    std::future::ready(()).await;
    let mut second = first;
    second.extend_from_slice(&[2; 8]);
    second
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn impl_methods_are_tagged_with_the_self_type() {
    let hd = HeapDiff::new();
    let mut c = LeakingClass::new();
    assert_eq!(c.add(1), Ok(1));
    let err = c.add(0); // early return with an allocation, still tagged
    let diff = hd.end();
    // The Vec's buffer, and the error string.
    assert_eq!(allocated_under(&diff, "LeakingClass"), (2, 32 + 4));
    assert_eq!(err, Err("zero".to_owned()));
}

fn trait_impls_of_generic_types_use_the_type_name() {
    let hd = HeapDiff::new();
    let s = Wrapper(vec![1, 2, 3]).render();
    let diff = hd.end();
    assert_eq!(s, "[1, 2, 3]");
    assert!(allocated_under(&diff, "Wrapper").0 >= 1, "{diff}");
}

fn functions_are_tagged_with_their_name_or_the_given_one() {
    let hd = HeapDiff::new();
    let b = make_buffer(100);
    let r = renamed();
    let diff = hd.end();
    assert_eq!(allocated_under(&diff, "make_buffer"), (1, 100));
    assert_eq!(allocated_under(&diff, "custom-name"), (1, 4));
    drop((b, r));
}

fn the_tag_ends_with_the_call_even_on_panic() {
    #[tagged]
    fn explode() {
        let _kept = std::hint::black_box(vec![0u8; 10]);
        panic!("boom");
    }
    // The panic is the point: keep its message out of the test output.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(explode);
    std::panic::set_hook(hook);
    assert!(result.is_err());
    let hd = HeapDiff::new();
    let after = vec![0u8; 10];
    let diff = hd.end();
    assert_eq!(allocated_under(&diff, "explode"), (0, 0), "{diff}");
    drop(after);
}

fn async_functions_are_tagged_across_polls() {
    let hd = HeapDiff::new();
    let v = block_on(fetch(16));
    let diff = hd.end();
    assert_eq!(v.len(), 24);
    let (allocated, bytes) = allocated_under(&diff, "fetch");
    assert_eq!(allocated, 1);
    assert_eq!(bytes, 32, "the buffer grew to 32 inside the tag: {diff}");
}

fn main() -> std::process::ExitCode {
    common::run(&[
        (
            "impl_methods_are_tagged_with_the_self_type",
            impl_methods_are_tagged_with_the_self_type,
        ),
        (
            "trait_impls_of_generic_types_use_the_type_name",
            trait_impls_of_generic_types_use_the_type_name,
        ),
        (
            "functions_are_tagged_with_their_name_or_the_given_one",
            functions_are_tagged_with_their_name_or_the_given_one,
        ),
        (
            "the_tag_ends_with_the_call_even_on_panic",
            the_tag_ends_with_the_call_even_on_panic,
        ),
        (
            "async_functions_are_tagged_across_polls",
            async_functions_are_tagged_across_polls,
        ),
    ])
}
