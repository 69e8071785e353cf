//! Names for the roots of retainer paths: the statics and thread-locals of
//! a loaded object, from its symbol table, the way a person writes them
//! (`appcore::AUDIT`, not `_ZN7appcore5AUDIT17h…E`).

use std::fs::File;

use object::{Object, ObjectSymbol, ReadCache, SymbolKind};

/// One object's data and thread-local symbols, sorted by address.
#[derive(Debug, Default)]
pub(crate) struct Symbols {
    /// `(address in the file, size, name)` of statics.
    data: Vec<(u64, u64, String)>,
    /// `(offset in the thread-local block, size, name)` of thread-locals.
    tls: Vec<(u64, u64, String)>,
}

impl Symbols {
    /// Reads the symbol table of the object at `path` (only the parts it
    /// needs); empty when it has none (a stripped binary).
    pub(crate) fn load(path: &str) -> Symbols {
        let Ok(file) = File::open(path) else {
            return Symbols::default();
        };
        let cache = ReadCache::new(file);
        let Ok(object) = object::File::parse(&cache) else {
            return Symbols::default();
        };
        let mut out = Symbols::default();
        for symbol in object.symbols() {
            let (Ok(name), kind) = (symbol.name(), symbol.kind()) else {
                continue;
            };
            let list = match kind {
                SymbolKind::Data => &mut out.data,
                SymbolKind::Tls => &mut out.tls,
                _ => continue,
            };
            list.push((symbol.address(), symbol.size(), person_name(name)));
        }
        out.data.sort();
        out.tls.sort();
        out
    }

    /// The static at `address` (as the file has it, before relocation),
    /// and how far into it the address is.
    pub(crate) fn static_at(&self, address: u64) -> Option<(&str, u64)> {
        find(&self.data, address)
    }

    /// The thread-local `offset` bytes into the object's thread-local
    /// block, and how far into it.
    pub(crate) fn thread_local_at(&self, offset: u64) -> Option<(&str, u64)> {
        find(&self.tls, offset)
    }
}

fn find(list: &[(u64, u64, String)], address: u64) -> Option<(&str, u64)> {
    let i = list.partition_point(|s| s.0 <= address).checked_sub(1)?;
    let (start, size, name) = &list[i];
    (address < start + size.max(&1)).then(|| (name.as_str(), address - start))
}

/// A symbol's name as its source spells it: demangled, without the hash,
/// and without what `thread_local!` and `static` items inside functions
/// add after the item's path (`::{{constant}}::{{closure}}::VAL`,
/// `::__getit::...`).
pub(crate) fn person_name(symbol: &str) -> String {
    let name = format!("{:#}", rustc_demangle::demangle(symbol));
    let cut = [
        "::{{constant}}",
        "::{constant#",
        "::__getit",
        "::{{closure}}",
        "::{closure#",
    ]
    .iter()
    .filter_map(|marker| name.find(marker))
    .min();
    match cut {
        Some(at) if at > 0 => name[..at].to_owned(),
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_items_paths() {
        assert_eq!(
            person_name("_ZN7appcore5AUDIT17h0123456789abcdefE"),
            "appcore::AUDIT"
        );
        assert_eq!(
            person_name(
                "_ZN7appcore5CACHE29_$u7b$$u7b$constant$u7d$$u7d$28_$u7b$$u7b$closure$u7d$$u7d$3VAL17h30983cb91b62a2f0E"
            ),
            "appcore::CACHE"
        );
        assert_eq!(person_name("errno_table"), "errno_table");
    }

    #[test]
    fn this_test_binarys_own_statics_and_thread_locals_are_found() {
        static NAMED_FOR_THE_TEST: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());
        thread_local! {
            static LOCAL_FOR_THE_TEST: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let symbols = Symbols::load("/proc/self/exe");
        let named = |list: &[(u64, u64, String)], what: &str| {
            list.iter()
                .any(|(_, _, n)| n.ends_with(what) && !n.contains('{'))
        };
        assert!(named(&symbols.data, "NAMED_FOR_THE_TEST"));
        assert!(named(&symbols.tls, "LOCAL_FOR_THE_TEST"));
        std::hint::black_box(&NAMED_FOR_THE_TEST);
        LOCAL_FOR_THE_TEST.with(|l| {
            std::hint::black_box(l);
        });
    }
}
