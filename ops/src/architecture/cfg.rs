//! Which items exist only in test builds: `#[cfg(test)]` (also inside `all(..)`, or every branch
//! of `any(..)`) and `#[test]` functions. The checks skip them: test modules `use super::*` freely.

use syn::punctuated::Punctuated;
use syn::{Attribute, ImplItem, Item, Meta, Token, TraitItem};

/// Whether attributes mark their item as compiled for tests only.
pub fn test_only(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("test")
            || (attr.path().is_ident("cfg") && attr.parse_args::<Meta>().is_ok_and(|meta| needs_test(&meta)))
    })
}

/// Whether a `cfg` predicate holds only when `test` does.
fn needs_test(predicate: &Meta) -> bool {
    match predicate {
        Meta::Path(path) => path.is_ident("test"),
        Meta::List(list) => {
            let Ok(parts) = list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated) else {
                return false;
            };
            if list.path.is_ident("all") {
                parts.iter().any(needs_test)
            } else if list.path.is_ident("any") {
                !parts.is_empty() && parts.iter().all(needs_test)
            } else {
                false
            }
        }
        Meta::NameValue(_) => false,
    }
}

/// The attributes of an item of a module.
pub fn item_attrs(item: &Item) -> &[Attribute] {
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// The attributes of an item of an `impl` block.
pub fn impl_item_attrs(item: &ImplItem) -> &[Attribute] {
    match item {
        ImplItem::Const(i) => &i.attrs,
        ImplItem::Fn(i) => &i.attrs,
        ImplItem::Type(i) => &i.attrs,
        ImplItem::Macro(i) => &i.attrs,
        _ => &[],
    }
}

/// The attributes of an item of a trait.
pub fn trait_item_attrs(item: &TraitItem) -> &[Attribute] {
    match item {
        TraitItem::Const(i) => &i.attrs,
        TraitItem::Fn(i) => &i.attrs,
        TraitItem::Type(i) => &i.attrs,
        TraitItem::Macro(i) => &i.attrs,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::test_only;
    use syn::{Attribute, parse_quote};

    fn attrs(item: syn::ItemFn) -> Vec<Attribute> {
        item.attrs
    }

    #[test]
    fn cfg_test_all_with_test_and_test_functions_are_test_only() {
        assert!(test_only(&attrs(parse_quote! { #[cfg(test)] fn f() {} })));
        assert!(test_only(&attrs(parse_quote! { #[cfg(all(test, feature = "x"))] fn f() {} })));
        assert!(test_only(&attrs(parse_quote! { #[test] fn f() {} })));
    }

    #[test]
    fn other_cfgs_are_not_test_only() {
        assert!(!test_only(&attrs(parse_quote! { #[cfg(feature = "test")] fn f() {} })));
        assert!(!test_only(&attrs(parse_quote! { #[cfg(not(test))] fn f() {} })));
        assert!(!test_only(&attrs(parse_quote! { #[cfg(any(test, unix))] fn f() {} })));
        assert!(!test_only(&attrs(parse_quote! { #[inline] fn f() {} })));
    }
}
