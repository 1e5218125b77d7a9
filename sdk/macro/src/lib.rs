//! The `#[sluice_sdk::transform]` attribute.
//!
//! It turns one plain function `fn(ChangeEvent) -> Result<..., Reject>` into a component
//! export of `sluice:transform/transform`, hiding `wit_bindgen::generate!` (which lives
//! in the SDK crate) from the plugin author. Mistakes in the signature are reported as
//! compile errors pointing at the signature, not deep inside generated code.

use proc_macro::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Error, FnArg, ItemFn, Path, ReturnType, Type, parse_macro_input};

/// Exports a function as this component's sluice transform.
///
/// ```text
/// #[sluice_sdk::transform]
/// fn cdm(event: ChangeEvent) -> Result<Vec<Record>, Reject> { ... }
///
/// #[sluice_sdk::transform(init = check_config)]
/// fn cdm2(event: ChangeEvent) -> Result<Option<Record>, Reject> { ... }
/// fn check_config(config: &sluice_sdk::Config) -> Result<(), String> { ... }
///
/// #[sluice_sdk::transform(config = Settings)]
/// fn cdm3(event: ChangeEvent, settings: &Settings) -> Result<Vec<Record>, Reject> { ... }
/// #[derive(serde::Deserialize)]
/// struct Settings { ... }
/// ```
///
/// With `config = T`, `init` deserializes the manifest's config pairs into `T` once
/// (refusing the plugin with an error naming the key) and every call gets `&T`.
#[proc_macro_attribute]
pub fn transform(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = match parse_args(attr) {
        Ok(args) => args,
        Err(e) => return e.to_compile_error().into(),
    };
    let function = parse_macro_input!(item as ItemFn);
    if let Err(e) = check_signature(&function, args.config.is_some()) {
        return e.to_compile_error().into();
    }
    expand(&function, &args).into()
}

/// The attribute's optional arguments.
struct Args {
    /// `init = path`: a `fn(&Config) -> Result<(), String>` run once at init.
    init: Option<Path>,
    /// `config = Type`: the settings type deserialized at init and passed by reference.
    config: Option<Type>,
}

fn parse_args(attr: TokenStream) -> syn::Result<Args> {
    let mut args = Args {
        init: None,
        config: None,
    };
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("init") {
            args.init = Some(meta.value()?.parse::<Path>()?);
            Ok(())
        } else if meta.path.is_ident("config") {
            args.config = Some(meta.value()?.parse::<Type>()?);
            Ok(())
        } else {
            Err(meta.error(
                "unknown argument: `#[transform]` takes `init = <function>` and `config = <type>`",
            ))
        }
    });
    syn::parse::Parser::parse(parser, attr)?;
    Ok(args)
}

fn check_signature(function: &ItemFn, typed_config: bool) -> syn::Result<()> {
    let sig = &function.sig;
    if let Some(asyncness) = sig.asyncness {
        return Err(Error::new(
            asyncness.span(),
            "a sluice transform cannot be `async`",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(Error::new(
            sig.generics.span(),
            "a sluice transform cannot be generic",
        ));
    }
    if typed_config && sig.inputs.len() != 2 {
        let span = match sig.inputs.iter().nth(2) {
            Some(extra) => extra.span(),
            None => sig.paren_token.span.join(),
        };
        return Err(Error::new(
            span,
            "with `config = T`, a sluice transform takes two arguments: `event: sluice_sdk::ChangeEvent, settings: &T`",
        ));
    }
    if !typed_config && sig.inputs.len() != 1 {
        // Point at the first extra argument, or at the empty parentheses.
        let span = match sig.inputs.iter().nth(1) {
            Some(extra) => extra.span(),
            None => sig.paren_token.span.join(),
        };
        return Err(Error::new(
            span,
            "a sluice transform takes exactly one argument: `event: sluice_sdk::ChangeEvent` (or a second, `settings: &T`, with `#[transform(config = T)]`)",
        ));
    }
    if let Some(FnArg::Receiver(receiver)) = sig.inputs.first() {
        return Err(Error::new(
            receiver.span(),
            "a sluice transform is a free function, not a method",
        ));
    }
    if let ReturnType::Default = sig.output {
        return Err(Error::new(
            sig.ident.span(),
            "a sluice transform must return `Result<Vec<Record>, Reject>` (or `Result<Option<Record>, Reject>`, `Result<Record, Reject>`)",
        ));
    }
    Ok(())
}

fn expand(function: &ItemFn, args: &Args) -> proc_macro2::TokenStream {
    let init = args.init.as_ref();
    let name = &function.sig.ident;
    let sig_span = function.sig.span();
    let input_span = function.sig.inputs.span();
    let return_type = match &function.sig.output {
        ReturnType::Type(_, return_type) => quote! { #return_type },
        // Refused by `check_signature`; `()` keeps the expansion well-formed regardless.
        ReturnType::Default => quote! { () },
    };
    // Type checks spanned at the signature, so a wrong argument or return type is
    // reported there rather than inside the generated export glue.
    let arg_check = match &args.config {
        Some(settings) => quote_spanned! {input_span=>
            let _: fn(::sluice_sdk::ChangeEvent, &#settings) -> _ = #name;
        },
        None => quote_spanned! {input_span=>
            let _: fn(::sluice_sdk::ChangeEvent) -> _ = #name;
        },
    };
    let settings_arg = match &args.config {
        Some(settings) => quote_spanned! {settings.span()=>
            ::core::option::Option::Some(::sluice_sdk::__private::settings_installer::<#settings>())
        },
        None => quote! { ::core::option::Option::None },
    };
    let call = match &args.config {
        Some(settings) => quote! {
            |event| #name(event, ::sluice_sdk::__private::installed_settings::<#settings>())
        },
        None => quote! { #name },
    };
    let output_check = quote_spanned! {function.sig.output.span()=>
        fn __sluice_assert_outcome<R: ::sluice_sdk::IntoOutcome>() {}
        __sluice_assert_outcome::<#return_type>();
    };
    let init_arg = match init {
        Some(path) => quote_spanned! {path.span()=>
            ::core::option::Option::Some(#path as fn(&::sluice_sdk::Config) -> ::core::result::Result<(), ::std::string::String>)
        },
        None => quote! { ::core::option::Option::None },
    };
    quote_spanned! {sig_span=>
        #function

        #[allow(dead_code)]
        const _: () = {
            fn __sluice_signature_checks() {
                #arg_check
                #output_check
            }
        };

        // Type-checks the `init` function and uses it in native builds, where the export
        // below is compiled out.
        const _: ::core::option::Option<::sluice_sdk::__private::ConfigCheck> = #init_arg;
        // Checks the settings type (serde `DeserializeOwned`, `Send + Sync + 'static`)
        // natively too.
        const _: ::core::option::Option<::sluice_sdk::__private::SettingsInstaller> = #settings_arg;

        // Exported only when building the component; natively the function stays a plain
        // function that tests and benchmarks call directly.
        #[cfg(target_family = "wasm")]
        const _: () = {
            struct __SluiceTransform;

            impl ::sluice_sdk::__private::PackedGuest for __SluiceTransform {
                fn init(
                    config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    ::sluice_sdk::__private::init(config, #settings_arg, #init_arg)
                }

                fn transform_packed(
                    batch: ::std::vec::Vec<u8>,
                ) -> ::std::vec::Vec<u8> {
                    ::sluice_sdk::__private::transform_packed(batch, #call)
                }
            }

            ::sluice_sdk::packed_bindings::__export_packed_transformer!(__SluiceTransform with_types_in ::sluice_sdk::packed_bindings);
        };
    }
}
