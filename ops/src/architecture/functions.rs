//! The functions of a file with a body and their length: free functions, methods of `impl`
//! blocks and trait methods with a default body, nested ones too, outside test-only items.
//! A function runs from the line of its `fn` keyword (attributes and doc comments before it do
//! not count) to the line of its closing brace, both included; closures count towards it.

use super::cfg;
use proc_macro2::Span;
use syn::visit::{self, Visit};
use syn::{ImplItem, Item, ItemFn, ItemImpl, ItemTrait, TraitItem, TraitItemFn, Type};

/// A function and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    /// `name`, or `Type::name` for a method, `Trait::name` for a trait's default method.
    pub name: String,
    /// The line of the `fn` keyword.
    pub line: usize,
    pub lines: usize,
}

/// The functions of a parsed file, in source order.
pub fn functions(file: &syn::File) -> Vec<Function> {
    let mut finder = Finder { owner: None, found: Vec::new() };
    finder.visit_file(file);
    finder.found
}

struct Finder {
    owner: Option<String>,
    found: Vec<Function>,
}

impl Finder {
    fn add(&mut self, ident: &syn::Ident, fn_token: Span, close: Span) {
        let name = match &self.owner {
            Some(owner) => format!("{owner}::{ident}"),
            None => ident.to_string(),
        };
        let line = fn_token.start().line;
        self.found.push(Function { name, line, lines: close.end().line + 1 - line });
    }

    fn with_owner(&mut self, owner: Option<String>, visit: impl FnOnce(&mut Self)) {
        let outer = std::mem::replace(&mut self.owner, owner);
        visit(self);
        self.owner = outer;
    }
}

/// The name an impl block's methods are reported under: the last segment of its type.
fn type_name(ty: &Type) -> String {
    match ty {
        Type::Path(path) => path.path.segments.last().map_or_else(String::new, |s| s.ident.to_string()),
        Type::Reference(reference) => type_name(&reference.elem),
        _ => "_".to_string(),
    }
}

impl<'ast> Visit<'ast> for Finder {
    fn visit_item(&mut self, item: &'ast Item) {
        if !cfg::test_only(cfg::item_attrs(item)) {
            visit::visit_item(self, item);
        }
    }

    fn visit_impl_item(&mut self, item: &'ast ImplItem) {
        if !cfg::test_only(cfg::impl_item_attrs(item)) {
            visit::visit_impl_item(self, item);
        }
    }

    fn visit_trait_item(&mut self, item: &'ast TraitItem) {
        if !cfg::test_only(cfg::trait_item_attrs(item)) {
            visit::visit_trait_item(self, item);
        }
    }

    fn visit_item_fn(&mut self, item: &'ast ItemFn) {
        self.with_owner(None, |this| {
            this.add(&item.sig.ident, item.sig.fn_token.span, item.block.brace_token.span.close());
            visit::visit_item_fn(this, item);
        });
    }

    fn visit_item_impl(&mut self, item: &'ast ItemImpl) {
        self.with_owner(Some(type_name(&item.self_ty)), |this| visit::visit_item_impl(this, item));
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        self.add(&item.sig.ident, item.sig.fn_token.span, item.block.brace_token.span.close());
        self.with_owner(None, |this| visit::visit_impl_item_fn(this, item));
    }

    fn visit_item_trait(&mut self, item: &'ast ItemTrait) {
        self.with_owner(Some(item.ident.to_string()), |this| visit::visit_item_trait(this, item));
    }

    fn visit_trait_item_fn(&mut self, item: &'ast TraitItemFn) {
        if let Some(body) = &item.default {
            self.add(&item.sig.ident, item.sig.fn_token.span, body.brace_token.span.close());
        }
        self.with_owner(None, |this| visit::visit_trait_item_fn(this, item));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A function of `lines` lines: `fn name() {`, filler, `}`.
    fn function_of(name: &str, lines: usize) -> String {
        let body: String = (2..lines).map(|i| format!("    let _x{i} = {i};\n")).collect();
        format!("fn {name}() {{\n{body}}}\n")
    }

    fn found(source: &str) -> Vec<(String, usize, usize)> {
        let file = syn::parse_file(source).expect("test source parses");
        functions(&file).into_iter().map(|f| (f.name, f.line, f.lines)).collect()
    }

    #[test]
    fn measures_from_the_fn_keyword_to_the_closing_brace() {
        let source = format!("/// doc\n#[inline]\n{}{}", function_of("a", 80), function_of("b", 81));
        assert_eq!(found(&source), [("a".into(), 3, 80), ("b".into(), 83, 81)]);
    }

    #[test]
    fn names_methods_by_their_type_or_trait_and_counts_closures_in_their_function() {
        let source = "struct S;\nimpl S {\n    pub fn m(&self) {\n        let c = || {\n            1\n        };\n    }\n}\ntrait T {\n    fn d() {}\n    fn r();\n}\n";
        assert_eq!(found(source), [("S::m".into(), 3, 5), ("T::d".into(), 10, 1)]);
    }

    #[test]
    fn skips_test_only_functions() {
        let source = "#[cfg(test)]\nmod tests {\n    fn helper() {}\n}\n#[test]\nfn t() {}\nimpl S {\n    #[cfg(test)]\n    fn only_in_tests() {}\n}\n";
        assert!(found(source).is_empty());
    }
}
