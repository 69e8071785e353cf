//! The objects loaded in the process (the program and its shared
//! libraries), as the dynamic loader lists them: what the fast unwinder
//! reads unwind rules from and what the retainer scan reads roots from.

use std::ffi::CStr;

/// One loaded object, for the duration of a [`for_each`] callback.
pub(super) struct Object<'a> {
    /// What its addresses were moved by when it was loaded.
    pub bias: u64,
    /// Its program headers.
    pub headers: &'a [libc::Elf64_Phdr],
    /// Its file's path as the loader has it; empty for the program.
    pub name: String,
    /// This thread's block of its thread-locals, when it has some and the
    /// block is allocated.
    pub tls_data: usize,
    /// The loader's counts of objects loaded and unloaded so far.
    pub loads: (u64, u64),
}

/// Calls `f` with each loaded object, the program first, until it returns
/// `false`. The loader holds its lock meanwhile: `f` must not load or
/// unload an object.
pub(super) fn for_each(mut f: impl FnMut(&Object<'_>) -> bool) {
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `dl_iterate_phdr` passes a valid `info` for the duration
        // of the call, and `data` is the `&mut dyn FnMut` that `for_each`
        // passed, alive and not otherwise borrowed during the call.
        let (info, f) = unsafe {
            (
                &*info,
                &mut *data.cast::<&mut dyn FnMut(&Object<'_>) -> bool>(),
            )
        };
        // SAFETY: `dlpi_phdr` points to `dlpi_phnum` program headers of the
        // object, mapped for as long as it is loaded.
        let headers =
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let name = if info.dlpi_name.is_null() {
            String::new()
        } else {
            // SAFETY: a non-null `dlpi_name` is a NUL-terminated string,
            // valid for the call.
            unsafe { CStr::from_ptr(info.dlpi_name) }
                .to_string_lossy()
                .into_owned()
        };
        let object = Object {
            bias: info.dlpi_addr,
            headers,
            name,
            tls_data: info.dlpi_tls_data as usize,
            loads: (info.dlpi_adds, info.dlpi_subs),
        };
        if f(&object) {
            0
        } else {
            1
        }
    }
    let mut f: &mut dyn FnMut(&Object<'_>) -> bool = &mut f;
    // SAFETY: `visit` is called once per loaded object with a valid
    // `dl_phdr_info` and the pointer to `f`, alive for the whole call.
    unsafe {
        libc::dl_iterate_phdr(
            Some(visit),
            (&mut f as *mut &mut dyn FnMut(&Object<'_>) -> bool).cast(),
        );
    }
}
