//! The `#[meshsim::test]` attribute. It only checks its arguments and wraps the function;
//! everything else happens in `meshsim::__private::run_test`. Use it through `meshsim::test`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, Lit, LitInt, LitStr, parse_macro_input};

/// Marks an async function taking a `meshsim::Sim` as a test; see `meshsim::test`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut backend: Option<LitStr> = None;
    let mut timeout: Option<(LitStr, u64)> = None;
    let mut seed: Option<LitInt> = None;
    let mut dilation: Option<f64> = None;
    let mut time: Option<LitStr> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("backend") {
            let lit: LitStr = meta.value()?.parse()?;
            match lit.value().to_ascii_lowercase().replace('_', "-").as_str() {
                "in-process" | "inprocess" | "embedded" | "docker" | "both" => {}
                other => {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!(
                            "unknown backend {other:?}: use \"in-process\", \"docker\" or \"both\""
                        ),
                    ));
                }
            }
            backend = Some(lit);
            Ok(())
        } else if meta.path.is_ident("timeout") {
            let lit: LitStr = meta.value()?.parse()?;
            let millis =
                parse_duration_ms(&lit.value()).map_err(|why| syn::Error::new(lit.span(), why))?;
            timeout = Some((lit, millis));
            Ok(())
        } else if meta.path.is_ident("seed") {
            let lit: LitInt = meta.value()?.parse()?;
            lit.base10_parse::<u64>().map_err(|_| {
                syn::Error::new(lit.span(), "seed must be a whole number from 0 to 2^64 - 1")
            })?;
            seed = Some(lit);
            Ok(())
        } else if meta.path.is_ident("dilation") {
            let lit: Lit = meta.value()?.parse()?;
            let k = match &lit {
                Lit::Int(i) => i.base10_parse::<u32>().ok().map(f64::from),
                Lit::Float(f) => f.base10_parse::<f64>().ok(),
                _ => None,
            }
            .filter(|k| k.is_finite() && *k >= 1.0)
            .ok_or_else(|| {
                syn::Error::new(
                    lit.span(),
                    "dilation must be a number of at least 1, like 10",
                )
            })?;
            dilation = Some(k);
            Ok(())
        } else if meta.path.is_ident("time") {
            let lit: LitStr = meta.value()?.parse()?;
            if !matches!(lit.value().as_str(), "virtual" | "real") {
                return Err(syn::Error::new(
                    lit.span(),
                    format!(
                        "unknown time {:?}: use \"virtual\" or \"real\"",
                        lit.value()
                    ),
                ));
            }
            time = Some(lit);
            Ok(())
        } else {
            Err(meta.error(
                "unknown meshsim::test argument: expected `backend`, `timeout`, `seed`, `dilation` or `time`",
            ))
        }
    });
    parse_macro_input!(args with parser);
    let item_tokens: TokenStream2 = item.clone().into();
    let func = parse_macro_input!(item as ItemFn);
    if let (Some(t), Some(_)) = (&time, dilation)
        && t.value() == "virtual"
    {
        return syn::Error::new(
            t.span(),
            "dilation slows the wall clock: it needs time = \"real\" (virtual time has no lag to make up for)",
        )
        .to_compile_error()
        .into();
    }
    match expand(func, backend, timeout, seed, dilation, time) {
        Ok(ts) => ts.into(),
        Err(e) => {
            let err = e.to_compile_error();
            quote!(#err #item_tokens).into()
        }
    }
}

/// `"90s"`, `"500ms"`, `"2m"` -> milliseconds.
fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("timeout {s:?} must be a whole number with a unit, like \"90s\""))?;
    let ms = match unit.trim() {
        "ms" => n,
        "s" => n * 1000,
        "m" | "min" => n * 60_000,
        other => return Err(format!("unknown unit {other:?} in timeout: use ms, s or m")),
    };
    if ms == 0 {
        return Err("timeout must be positive".into());
    }
    Ok(ms)
}

/// Whether the tokens mention `traced_test` or `tracing_test` (the attribute, or what it
/// expanded to when placed above ours).
fn mentions_traced_test(tokens: TokenStream2) -> bool {
    tokens.into_iter().any(|t| match t {
        TokenTree::Ident(i) => i == "traced_test" || i == "tracing_test",
        TokenTree::Group(g) => mentions_traced_test(g.stream()),
        _ => false,
    })
}

fn expand(
    func: ItemFn,
    backend: Option<LitStr>,
    timeout: Option<(LitStr, u64)>,
    seed: Option<LitInt>,
    dilation: Option<f64>,
    time: Option<LitStr>,
) -> syn::Result<TokenStream2> {
    if func.sig.asyncness.is_none() {
        return Err(syn::Error::new(
            func.sig.fn_token.span(),
            "#[meshsim::test] functions must be `async fn`",
        ));
    }
    if let Some(attr) = func
        .attrs
        .iter()
        .find(|a| a.path().segments.last().is_some_and(|s| s.ident == "test"))
    {
        return Err(syn::Error::new(
            attr.span(),
            "second test attribute: #[meshsim::test] already makes this a test",
        ));
    }
    if func.sig.inputs.len() > 1 {
        return Err(syn::Error::new(
            func.sig.inputs.span(),
            "#[meshsim::test] functions take one argument, `sim: meshsim::Sim` (or none)",
        ));
    }
    let user_subscriber = func.attrs.iter().any(|a| mentions_traced_test(quote!(#a)))
        || mentions_traced_test(func.block.to_token_stream());
    let name = &func.sig.ident;
    let vis = &func.vis;
    let attrs = &func.attrs;
    let mut inner = func.clone();
    inner.attrs.clear();
    inner.vis = syn::Visibility::Inherited;
    let timeout = match timeout {
        Some((lit, ms)) => {
            quote_spanned!(lit.span()=> ::core::option::Option::Some(::core::time::Duration::from_millis(#ms)))
        }
        None => quote!(::core::option::Option::None),
    };
    let seed = match seed {
        Some(s) => quote!(::core::option::Option::Some(#s)),
        None => quote!(::core::option::Option::None),
    };
    let dilation = match dilation {
        Some(k) => {
            let k = proc_macro2::Literal::f64_suffixed(k);
            quote!(::core::option::Option::Some(#k))
        }
        None => quote!(::core::option::Option::None),
    };
    let time = match time {
        Some(t) => quote!(::core::option::Option::Some(#t)),
        None => quote!(::core::option::Option::None),
    };
    let call = if func.sig.inputs.is_empty() {
        quote!(|_sim: ::meshsim::Sim| #name())
    } else {
        quote!(#name)
    };
    let both = backend.as_ref().is_some_and(|b| b.value() == "both");
    let test_fn = |fn_name: &syn::Ident, backend: TokenStream2| {
        quote_spanned! {Span::call_site()=>
            #(#attrs)*
            #[::core::prelude::v1::test]
            #vis fn #fn_name() {
                #inner
                ::meshsim::__private::run_test(
                    ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#fn_name)),
                    ::meshsim::__private::TestArgs {
                        backend: #backend,
                        timeout: #timeout,
                        seed: #seed,
                        dilation: #dilation,
                        time: #time,
                        user_subscriber: #user_subscriber,
                    },
                    #call,
                )
            }
        }
    };
    if both {
        // One test per backend: `name::in_process` and `name::docker`.
        let in_process = test_fn(
            &syn::Ident::new("in_process", Span::call_site()),
            quote!(::core::option::Option::Some("in-process")),
        );
        let docker = test_fn(
            &syn::Ident::new("docker", Span::call_site()),
            quote!(::core::option::Option::Some("docker")),
        );
        return Ok(quote! {
            #vis mod #name {
                #[allow(unused_imports)]
                use super::*;
                #in_process
                #docker
            }
        });
    }
    let backend = match backend {
        Some(b) => quote!(::core::option::Option::Some(#b)),
        None => quote!(::core::option::Option::None),
    };
    Ok(test_fn(name, backend))
}
