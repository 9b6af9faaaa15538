//! What one source file says about its neighbours: the modules it declares, the names its `use`
//! items bring in, and every path that may lead into another module of the crate (in code, in
//! types, and in the tokens of macro calls and attributes, which syn leaves unparsed).

use super::cfg;
use proc_macro2::{Spacing, TokenStream, TokenTree};
use syn::visit::{self, Visit};
use syn::{Attribute, ImplItem, Item, ItemMod, ItemUse, Macro, Meta, Path, TraitItem, UseTree};

/// The facts of one file. A `scope` is the path of inline `mod x { .. }` blocks from the file's
/// own module down to where the fact was written (empty at the file's top level).
#[derive(Debug, Default)]
pub struct FileFacts {
    pub mods: Vec<ModDecl>,
    pub uses: Vec<UseLeaf>,
    pub paths: Vec<PathRef>,
}

/// `mod name;` (`inline: false`) or `mod name { .. }`.
#[derive(Debug)]
pub struct ModDecl {
    pub scope: Vec<String>,
    pub name: String,
    pub inline: bool,
    pub test: bool,
    pub line: usize,
}

/// One name a `use` tree brings in: `segments` as written, under `alias` (none for `as _`).
#[derive(Debug)]
pub struct UseLeaf {
    pub scope: Vec<String>,
    pub segments: Vec<String>,
    pub alias: Option<String>,
    pub glob: bool,
    pub line: usize,
}

/// A path of two or more segments written in code, as written.
#[derive(Debug)]
pub struct PathRef {
    pub scope: Vec<String>,
    pub segments: Vec<String>,
    pub line: usize,
}

/// The facts of a parsed file; items only compiled for tests add nothing but their `mod`s.
pub fn collect(file: &syn::File) -> FileFacts {
    let mut collector = Collector { scope: Vec::new(), in_test: false, facts: FileFacts::default() };
    collector.visit_file(file);
    collector.facts
}

struct Collector {
    scope: Vec<String>,
    in_test: bool,
    facts: FileFacts,
}

impl Collector {
    fn visit_unless_test(&mut self, attrs: &[Attribute], visit: impl FnOnce(&mut Self)) {
        let outer = self.in_test;
        self.in_test |= cfg::test_only(attrs);
        visit(self);
        self.in_test = outer;
    }

    fn add_use_tree(&mut self, prefix: &mut Vec<String>, tree: &UseTree, line: usize) {
        let (segments, alias, glob) = match tree {
            UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.add_use_tree(prefix, &p.tree, line);
                prefix.pop();
                return;
            }
            UseTree::Group(group) => {
                group.items.iter().for_each(|item| self.add_use_tree(prefix, item, line));
                return;
            }
            UseTree::Name(n) => (leaf(prefix, &n.ident), Some(n.ident.to_string()), false),
            UseTree::Rename(r) => (leaf(prefix, &r.ident), Some(r.rename.to_string()), false),
            UseTree::Glob(_) => (prefix.clone(), None, true),
        };
        let alias = alias.filter(|name| name != "_").map(|name| self_alias(name, &segments));
        self.facts.uses.push(UseLeaf { scope: self.scope.clone(), segments, alias, glob, line });
    }

    fn add_tokens(&mut self, tokens: TokenStream) {
        for (segments, line) in token_paths(tokens) {
            self.facts.paths.push(PathRef { scope: self.scope.clone(), segments, line });
        }
    }
}

/// `prefix::ident`, where `prefix::self` names the prefix itself.
fn leaf(prefix: &[String], ident: &syn::Ident) -> Vec<String> {
    let mut segments = prefix.to_vec();
    if ident != "self" || segments.is_empty() {
        segments.push(ident.to_string());
    }
    segments
}

/// The name `use a::b::{self}` binds is `b`, not `self`.
fn self_alias(name: String, segments: &[String]) -> String {
    if name == "self" { segments.last().cloned().unwrap_or(name) } else { name }
}

impl<'ast> Visit<'ast> for Collector {
    fn visit_item(&mut self, item: &'ast Item) {
        self.visit_unless_test(cfg::item_attrs(item), |this| visit::visit_item(this, item));
    }

    fn visit_impl_item(&mut self, item: &'ast ImplItem) {
        self.visit_unless_test(cfg::impl_item_attrs(item), |this| visit::visit_impl_item(this, item));
    }

    fn visit_trait_item(&mut self, item: &'ast TraitItem) {
        self.visit_unless_test(cfg::trait_item_attrs(item), |this| visit::visit_trait_item(this, item));
    }

    fn visit_item_mod(&mut self, item: &'ast ItemMod) {
        let name = item.ident.to_string();
        let (scope, inline, test) = (self.scope.clone(), item.content.is_some(), self.in_test);
        let line = item.ident.span().start().line;
        self.facts.mods.push(ModDecl { scope, name: name.clone(), inline, test, line });
        self.scope.push(name);
        visit::visit_item_mod(self, item);
        self.scope.pop();
    }

    fn visit_item_use(&mut self, item: &'ast ItemUse) {
        if !self.in_test && item.leading_colon.is_none() {
            let line = item.use_token.span.start().line;
            self.add_use_tree(&mut Vec::new(), &item.tree, line);
        }
    }

    fn visit_path(&mut self, path: &'ast Path) {
        if !self.in_test && path.leading_colon.is_none() && path.segments.len() > 1 {
            let segments = path.segments.iter().map(|s| s.ident.to_string()).collect();
            let line = path.segments[0].ident.span().start().line;
            self.facts.paths.push(PathRef { scope: self.scope.clone(), segments, line });
        }
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast Macro) {
        if !self.in_test {
            self.add_tokens(mac.tokens.clone());
        }
        visit::visit_macro(self, mac);
    }

    fn visit_attribute(&mut self, attr: &'ast Attribute) {
        if let (false, Meta::List(list)) = (self.in_test, &attr.meta) {
            self.add_tokens(list.tokens.clone());
        }
        visit::visit_attribute(self, attr);
    }
}

/// The paths of two or more segments (`a::b`, `$crate::a::b`) in a token stream, with their lines.
pub fn token_paths(tokens: TokenStream) -> Vec<(Vec<String>, usize)> {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < trees.len() {
        match &trees[i] {
            TokenTree::Group(group) => found.extend(token_paths(group.stream())),
            TokenTree::Ident(ident) => {
                let mut segments = vec![ident.to_string()];
                while let Some(next) = ident_after_colons(&trees, i) {
                    segments.push(next);
                    i += 3;
                }
                if segments.len() > 1 {
                    found.push((segments, ident.span().start().line));
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// The identifier in `trees[at] :: ident`, if that is what follows.
fn ident_after_colons(trees: &[TokenTree], at: usize) -> Option<String> {
    match (trees.get(at + 1), trees.get(at + 2), trees.get(at + 3)) {
        (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)), Some(TokenTree::Ident(next)))
            if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':' =>
        {
            Some(next.to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(source: &str) -> FileFacts {
        collect(&syn::parse_file(source).expect("test source parses"))
    }

    fn use_segments(facts: &FileFacts) -> Vec<(String, Option<String>, bool)> {
        facts.uses.iter().map(|u| (u.segments.join("::"), u.alias.clone(), u.glob)).collect()
    }

    #[test]
    fn use_trees_are_flattened_with_groups_globs_renames_and_self() {
        let f = facts("pub use crate::a::{self, b::C as D, e::*};\nuse super::x as _;\n");
        assert_eq!(
            use_segments(&f),
            [
                ("crate::a".into(), Some("a".into()), false),
                ("crate::a::b::C".into(), Some("D".into()), false),
                ("crate::a::e".into(), None, true),
                ("super::x".into(), None, false),
            ]
        );
        assert_eq!(f.uses[3].line, 2);
    }

    #[test]
    fn paths_in_code_and_macro_tokens_are_found_with_their_scope_and_line() {
        let f = facts("mod inner {\n    fn f() { crate::a::b(); format!(\"{}\", super::c::D); }\n}\n");
        let paths: Vec<_> =
            f.paths.iter().map(|p| (p.segments.join("::"), p.scope.clone(), p.line)).collect();
        assert_eq!(
            paths,
            [
                ("crate::a::b".into(), vec!["inner".to_string()], 2),
                ("super::c::D".into(), vec!["inner".into()], 2)
            ]
        );
    }

    #[test]
    fn test_only_items_add_only_their_mod_declarations() {
        let f = facts(
            "#[cfg(test)]\nmod tests {\n    use super::*;\n    mod helpers;\n    fn t() { crate::a::b(); }\n}\n",
        );
        assert!(f.uses.is_empty() && f.paths.is_empty());
        let mods: Vec<_> = f.mods.iter().map(|m| (m.name.as_str(), m.inline, m.test)).collect();
        assert_eq!(mods, [("tests", true, true), ("helpers", false, true)]);
    }
}
