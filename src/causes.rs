//! Finding a typed error among an error's causes (what a refused connection
//! or a stalled body looks like once hyper or reqwest has wrapped it).

use std::error::Error;

/// The first `T` in `error`'s chain of causes (`error` itself included).
pub fn find<'a, T: Error + 'static>(error: &'a (dyn Error + 'static)) -> Option<&'a T> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}
