//! `#[tagged]` and `#[tagged("name")]`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Block, Error, ImplItem, Item, ItemImpl, LitStr, Result, Signature, Type};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> Result<TokenStream> {
    let name = parse_name(args)?;
    let item: Item = syn::parse2(item.clone()).map_err(|_| not_taggable(&item))?;
    match item {
        Item::Fn(mut f) => {
            let tag = name.unwrap_or_else(|| f.sig.ident.to_string());
            *f.block = wrap(&f.sig, &f.block, &tag)?;
            Ok(quote!(#f))
        }
        Item::Impl(mut imp) => {
            let tag = match name {
                Some(tag) => tag,
                None => type_name(&imp)?,
            };
            for item in &mut imp.items {
                if let ImplItem::Fn(method) = item {
                    method.block = wrap(&method.sig, &method.block, &tag)?;
                }
            }
            Ok(quote!(#imp))
        }
        other => Err(not_taggable(&quote!(#other))),
    }
}

fn not_taggable(item: &TokenStream) -> Error {
    Error::new(
        item.clone()
            .into_iter()
            .next()
            .map_or_else(proc_macro2::Span::call_site, |t| t.span()),
        "#[tagged] applies to a function or an impl block",
    )
}

/// The optional tag name: nothing, or one string literal.
fn parse_name(args: TokenStream) -> Result<Option<String>> {
    if args.is_empty() {
        return Ok(None);
    }
    let lit: LitStr = syn::parse2(args.clone()).map_err(|_| {
        Error::new(
            args.clone()
                .into_iter()
                .next()
                .map_or_else(proc_macro2::Span::call_site, |t| t.span()),
            "expected a tag name in quotes, like #[tagged(\"Session\")]",
        )
    })?;
    let name = lit.value();
    if name.trim().is_empty() {
        return Err(Error::new(lit.span(), "a tag name cannot be empty"));
    }
    Ok(Some(name))
}

/// The tag of an impl block: the last path segment of its `Self` type.
fn type_name(imp: &ItemImpl) -> Result<String> {
    let mut ty: &Type = &imp.self_ty;
    loop {
        match ty {
            Type::Reference(r) => ty = &r.elem,
            Type::Paren(p) => ty = &p.elem,
            Type::Group(g) => ty = &g.elem,
            Type::Path(p) if p.qself.is_none() => {
                if let Some(seg) = p.path.segments.last() {
                    return Ok(seg.ident.to_string());
                }
                break;
            }
            _ => break,
        }
    }
    Err(Error::new(
        imp.self_ty.span(),
        "#[tagged] cannot name a tag after this type; give a name: #[tagged(\"Name\")]",
    ))
}

/// The body, run under the tag: a guard for a plain function, a tagged
/// future for an `async fn`.
fn wrap(sig: &Signature, block: &Block, tag: &str) -> Result<Block> {
    if let Some(constness) = &sig.constness {
        return Err(Error::new(
            constness.span(),
            "#[tagged] cannot tag a `const fn`: tags are set at run time",
        ));
    }
    let key = quote! {
        static __MEMWATCH_TAG: ::memwatch_test::__private::TagKey =
            ::memwatch_test::__private::TagKey::new(#tag);
    };
    let body = if sig.asyncness.is_some() {
        quote! {{
            #key
            ::memwatch_test::__private::Tagged::new(&__MEMWATCH_TAG, async move #block).await
        }}
    } else {
        let stmts = &block.stmts;
        quote! {{
            #key
            let __memwatch_tag_guard = __MEMWATCH_TAG.enter();
            #(#stmts)*
        }}
    };
    syn::parse2(body)
}
