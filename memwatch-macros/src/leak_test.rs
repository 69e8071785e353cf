//! `#[leak_test]` and its options.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Error, Expr, ExprLit, Ident, ItemFn, Lit, LitInt, Path, Result, ReturnType, Token};

/// One `name` or `name = value` of the attribute.
struct Arg {
    name: Ident,
    value: Option<Expr>,
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> Result<Self> {
        let name: Ident = input.parse()?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(Arg { name, value })
    }
}

const OPTIONS: &str =
    "iterations, max_iterations, time_limit, warmup, duration, threshold_bytes, threshold_blocks, collect, ignore, should_leak, sites, resources, snapshot, count_allocations";

#[derive(Default)]
struct Options {
    iterations: Option<u32>,
    max_iterations: Option<u32>,
    time_limit_ms: Option<u64>,
    warmup: Option<u32>,
    duration_ms: Option<u64>,
    threshold_bytes: Option<u64>,
    threshold_blocks: Option<u64>,
    collect: Option<Path>,
    ignore: bool,
    should_leak: bool,
    sites: bool,
    count_allocations: bool,
    resources: Option<bool>,
    /// `None`: default name; `Some(None)`: `snapshot = false`.
    snapshot: Option<Option<String>>,
}

fn int<T: std::str::FromStr>(arg: &Arg, min: u64) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    let name = &arg.name;
    let Some(Expr::Lit(ExprLit {
        lit: Lit::Int(lit), ..
    })) = &arg.value
    else {
        return Err(Error::new(
            arg.value.as_ref().map_or(name.span(), |v| v.span()),
            format!("`{name}` takes a whole number, like `{name} = 10`"),
        ));
    };
    check_min(name, lit, min)?;
    lit.base10_parse()
}

fn check_min(name: &Ident, lit: &LitInt, min: u64) -> Result<()> {
    let value: u64 = lit.base10_parse()?;
    if value < min {
        return Err(Error::new(
            lit.span(),
            format!("`{name}` must be at least {min}"),
        ));
    }
    Ok(())
}

/// `duration = "30s"` (a soak test's measured time) or `time_limit = "5s"`
/// (the budget of an ambiguous test): at least 10 ms.
fn duration(arg: &Arg) -> Result<u64> {
    let name = &arg.name;
    let Some(Expr::Lit(ExprLit {
        lit: Lit::Str(s), ..
    })) = &arg.value
    else {
        return Err(Error::new(
            arg.value.as_ref().map_or(name.span(), |v| v.span()),
            format!("`{name}` takes a time in quotes, like `{name} = \"30s\"`"),
        ));
    };
    let d = humantime::parse_duration(&s.value())
        .map_err(|e| Error::new(s.span(), format!("`{}` is not a duration: {e}", s.value())))?;
    let ms = d.as_millis();
    if ms < 10 {
        return Err(Error::new(
            s.span(),
            format!("`{name}` must be at least 10ms"),
        ));
    }
    u64::try_from(ms).map_err(|_| Error::new(s.span(), "this duration is too long"))
}

fn flag(arg: &Arg) -> Result<bool> {
    match &arg.value {
        None => Ok(true),
        Some(Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        })) => Ok(b.value),
        Some(v) => Err(Error::new(
            v.span(),
            format!("`{}` is a flag: write `{0}` or `{0} = false`", arg.name),
        )),
    }
}

fn parse_options(args: TokenStream) -> Result<Options> {
    let args = syn::parse::Parser::parse2(Punctuated::<Arg, Token![,]>::parse_terminated, args)?;
    let mut o = Options::default();
    let mut seen: Vec<String> = Vec::new();
    for arg in &args {
        let name = arg.name.to_string();
        if seen.contains(&name) {
            return Err(Error::new(
                arg.name.span(),
                format!("`{name}` is given twice"),
            ));
        }
        seen.push(name.clone());
        match name.as_str() {
            "iterations" => o.iterations = Some(int(arg, 2)?),
            "max_iterations" => o.max_iterations = Some(int(arg, 2)?),
            "time_limit" => o.time_limit_ms = Some(duration(arg)?),
            "warmup" => o.warmup = Some(int(arg, 0)?),
            "duration" => o.duration_ms = Some(duration(arg)?),
            "threshold_bytes" => o.threshold_bytes = Some(int(arg, 1)?),
            "threshold_blocks" => o.threshold_blocks = Some(int(arg, 1)?),
            "collect" => match &arg.value {
                Some(Expr::Path(p)) if p.qself.is_none() => o.collect = Some(p.path.clone()),
                other => {
                    return Err(Error::new(
                        other.as_ref().map_or(arg.name.span(), |v| v.span()),
                        "`collect` takes the path of a function, like `collect = flush_epochs`",
                    ))
                }
            },
            "ignore" => o.ignore = flag(arg)?,
            "should_leak" => o.should_leak = flag(arg)?,
            "sites" => o.sites = flag(arg)?,
            "count_allocations" => o.count_allocations = flag(arg)?,
            "resources" => o.resources = Some(flag(arg)?),
            "snapshot" => {
                o.snapshot = Some(match &arg.value {
                    Some(Expr::Lit(ExprLit {
                        lit: Lit::Bool(b), ..
                    })) if !b.value => None,
                    Some(Expr::Lit(ExprLit {
                        lit: Lit::Str(s), ..
                    })) => match memwatch_report::naming::invalid_name(&s.value()) {
                        None => Some(s.value()),
                        Some(why) => return Err(Error::new(s.span(), why)),
                    },
                    other => {
                        return Err(Error::new(
                            other.as_ref().map_or(arg.name.span(), |v| v.span()),
                            "`snapshot` takes `false` or a name, like `snapshot = \"parse\"`",
                        ))
                    }
                })
            }
            _ => {
                return Err(Error::new(
                    arg.name.span(),
                    format!("unknown option `{name}`; the options are {OPTIONS}"),
                ))
            }
        }
    }
    check_budget(&args, &o)?;
    Ok(o)
}

/// The budget options must make sense together.
fn check_budget(args: &Punctuated<Arg, Token![,]>, o: &Options) -> Result<()> {
    let find = |name: &str| args.iter().find(|a| a.name == name);
    if o.duration_ms.is_some() {
        for name in ["iterations", "max_iterations", "time_limit"] {
            if let Some(arg) = find(name) {
                return Err(Error::new(
                    arg.name.span(),
                    format!("`{name}` has no effect on a soak test: its `duration` is its budget"),
                ));
            }
        }
    }
    if let (Some(min), Some(max)) = (o.iterations, o.max_iterations) {
        if max < min {
            let arg = find("max_iterations").expect("given");
            return Err(Error::new(
                arg.value.as_ref().map_or(arg.name.span(), |v| v.span()),
                format!("`max_iterations` must be at least `iterations` ({min})"),
            ));
        }
    }
    Ok(())
}

fn check_signature(f: &ItemFn) -> Result<()> {
    let sig = &f.sig;
    if let Some(c) = &sig.constness {
        return Err(Error::new(c.span(), "a leak test cannot be a `const fn`"));
    }
    if let Some(u) = &sig.unsafety {
        return Err(Error::new(u.span(), "a leak test cannot be an `unsafe fn`"));
    }
    if !sig.generics.params.is_empty() {
        return Err(Error::new(
            sig.generics.params.span(),
            "a leak test cannot be generic",
        ));
    }
    if let Some(receiver) = sig.receiver() {
        return Err(Error::new(
            receiver.span(),
            "a leak test is a free function, not a method: move it out of the `impl` block \
             (a module-level `fn`), and call the method from there",
        ));
    }
    if !sig.inputs.is_empty() {
        return Err(Error::new(
            sig.inputs.span(),
            "a leak test takes no arguments",
        ));
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        return Err(Error::new(
            ty.span(),
            "a leak test returns nothing: assert inside it, a panic fails the test",
        ));
    }
    Ok(())
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> Result<TokenStream> {
    let options = parse_options(args)?;
    let f: ItemFn = syn::parse2(item.clone()).map_err(|_| {
        Error::new(
            item.into_iter()
                .next()
                .map_or_else(Span::call_site, |t| t.span()),
            "#[leak_test] applies to a function",
        )
    })?;
    check_signature(&f)?;

    let ident = &f.sig.ident;
    let private = quote!(::memwatch_test::__private);
    let body = if f.sig.asyncness.is_some() {
        quote_spanned! {f.sig.asyncness.span()=>
            #private::async_body(|| ::std::boxed::Box::pin(#ident()))
        }
    } else {
        quote!(#private::Body::Sync(#ident))
    };

    let mut fields = Vec::new();
    if let Some(v) = options.iterations {
        fields.push(quote!(iterations: #v,));
    }
    if let Some(v) = options.max_iterations {
        fields.push(quote!(max_iterations: #v,));
    }
    if let Some(ms) = options.time_limit_ms {
        fields.push(quote!(time_limit: ::std::time::Duration::from_millis(#ms),));
    }
    if let Some(v) = options.warmup {
        fields.push(quote!(warmup: #v,));
    }
    if let Some(ms) = options.duration_ms {
        fields.push(quote!(duration: ::std::option::Option::Some(
            ::std::time::Duration::from_millis(#ms)
        ),));
    }
    if let Some(v) = options.threshold_bytes {
        fields.push(quote!(threshold_bytes: #v,));
    }
    if let Some(v) = options.threshold_blocks {
        fields.push(quote!(threshold_blocks: #v,));
    }
    if let Some(path) = &options.collect {
        // Through a typed function, so a wrong signature is reported on the path.
        let collector = quote_spanned!(path.span()=> #private::collector(#path));
        fields.push(quote!(collect: ::std::option::Option::Some(#collector),));
    }
    let (ignore, should_leak, sites) = (options.ignore, options.should_leak, options.sites);
    let count_allocations = options.count_allocations;
    fields.push(quote!(
        ignore: #ignore,
        should_leak: #should_leak,
        sites: #sites,
        count_allocations: #count_allocations,
    ));
    if let Some(resources) = options.resources {
        fields.push(quote!(resources: #resources,));
    }
    match &options.snapshot {
        None => {}
        Some(None) => fields.push(quote!(snapshot: #private::SnapshotName::Off,)),
        Some(Some(name)) => fields.push(quote!(snapshot: #private::SnapshotName::Named(#name),)),
    }

    Ok(quote! {
        #f

        #private::inventory::submit! {
            #private::LeakTest {
                module_path: ::std::module_path!(),
                name: ::std::stringify!(#ident),
                file: ::std::file!(),
                line: ::std::line!(),
                body: #body,
                options: #private::Options {
                    #(#fields)*
                    ..#private::Options::DEFAULT
                },
            }
        }
    })
}
