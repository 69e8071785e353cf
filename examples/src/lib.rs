//! Clean and leaky code side by side. `tests/leaks.rs` has a leak test for
//! each; run them with `cargo test -p memwatch-examples --test leaks`.
//!
//! Types are `#[tagged]`, so a leak test's heap diff names them.

pub mod tree {
    //! A tree whose nodes know their parent.
    use std::cell::RefCell;
    use std::rc::{Rc, Weak};

    use memwatch_test::tagged;

    /// A child that points back at its parent with a strong `Rc`: parent and
    /// child keep each other alive, and the pair is never freed.
    pub struct LeakyNode {
        pub name: String,
        pub parent: RefCell<Option<Rc<LeakyNode>>>,
        pub children: RefCell<Vec<Rc<LeakyNode>>>,
    }

    #[tagged]
    impl LeakyNode {
        pub fn family(name: &str) -> Rc<LeakyNode> {
            let parent = Rc::new(LeakyNode {
                name: name.to_owned(),
                parent: RefCell::new(None),
                children: RefCell::new(Vec::new()),
            });
            let child = Rc::new(LeakyNode {
                name: format!("{name}/child"),
                parent: RefCell::new(Some(parent.clone())),
                children: RefCell::new(Vec::new()),
            });
            parent.children.borrow_mut().push(child);
            parent
        }
    }

    /// The fix: the back pointer is a `Weak`.
    pub struct Node {
        pub name: String,
        pub parent: RefCell<Weak<Node>>,
        pub children: RefCell<Vec<Rc<Node>>>,
    }

    #[tagged]
    impl Node {
        pub fn family(name: &str) -> Rc<Node> {
            let parent = Rc::new(Node {
                name: name.to_owned(),
                parent: RefCell::new(Weak::new()),
                children: RefCell::new(Vec::new()),
            });
            let child = Rc::new(Node {
                name: format!("{name}/child"),
                parent: RefCell::new(Rc::downgrade(&parent)),
                children: RefCell::new(Vec::new()),
            });
            parent.children.borrow_mut().push(child);
            parent
        }
    }
}

pub mod config {
    //! Settings handed out as `&'static`.
    use std::sync::OnceLock;

    use memwatch_test::tagged;

    /// Settings parsed from text.
    pub struct Settings {
        pub entries: Vec<(String, String)>,
    }

    #[tagged]
    impl Settings {
        pub fn parse(text: &str) -> Settings {
            Settings {
                entries: text
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .collect(),
            }
        }
    }

    const TEXT: &str = "threads = 4\nname = demo\n";

    /// Leaks: a `&'static` made with `Box::leak` on every call.
    pub fn leaky_settings() -> &'static Settings {
        Box::leak(Box::new(Settings::parse(TEXT)))
    }

    /// Lazy initialisation: made once, on first use, then shared.
    pub fn settings() -> &'static Settings {
        static SETTINGS: OnceLock<Settings> = OnceLock::new();
        SETTINGS.get_or_init(|| Settings::parse(TEXT))
    }
}

pub mod cache {
    //! Memoised results keyed by request.
    use std::collections::hash_map::Entry;
    use std::collections::{HashMap, VecDeque};
    use std::sync::Mutex;

    use memwatch_test::tagged;

    /// A rendered page.
    pub struct Page {
        pub html: String,
    }

    #[tagged]
    impl Page {
        pub fn render(id: u64) -> Page {
            Page {
                html: format!("<h1>page {id}</h1>"),
            }
        }
    }

    /// Leaks: a global cache that remembers every page it ever rendered.
    pub fn leaky_render(id: u64) -> usize {
        static CACHE: Mutex<Option<HashMap<u64, Page>>> = Mutex::new(None);
        let mut cache = CACHE.lock().unwrap();
        let page = cache
            .get_or_insert_with(HashMap::new)
            .entry(id)
            .or_insert_with(|| Page::render(id));
        page.html.len()
    }

    /// The fix: a least-recently-used cache bounded to `CAPACITY` pages.
    pub struct Lru {
        order: VecDeque<u64>,
        pages: HashMap<u64, Page>,
    }

    pub const CAPACITY: usize = 8;

    pub fn render(id: u64) -> usize {
        static CACHE: Mutex<Option<Lru>> = Mutex::new(None);
        let mut guard = CACHE.lock().unwrap();
        let lru = guard.get_or_insert_with(|| Lru {
            order: VecDeque::with_capacity(CAPACITY + 1),
            pages: HashMap::with_capacity(CAPACITY + 1),
        });
        let len = match lru.pages.entry(id) {
            Entry::Occupied(page) => page.get().html.len(),
            Entry::Vacant(slot) => {
                lru.order.push_back(id);
                slot.insert(Page::render(id)).html.len()
            }
        };
        if lru.order.len() > CAPACITY {
            let old = lru.order.pop_front().unwrap();
            lru.pages.remove(&old);
        }
        len
    }
}
