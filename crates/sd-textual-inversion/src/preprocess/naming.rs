//! Output names: A1111's `f"{index:05}-{subindex}-{filename_part}"` where `filename_part` is
//! the source's name without its extension (`os.path.splitext` + `basename`), `index` the
//! source's position in the input folder listing (every entry counts, caption files and
//! unreadable files included, as in A1111's `enumerate(os.listdir(src))`), and `subindex` the
//! number of pictures already written for this source (splits, focal crops, flipped copies).

/// Python's `os.path.splitext` on a file name: the extension starts at the last dot, unless
/// every dot before it is leading (`.bashrc` has no extension).
pub fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(dot) if name[..dot].chars().any(|c| c != '.') => (&name[..dot], &name[dot..]),
        _ => (name, ""),
    }
}

/// `"{index:05}-{subindex}-{stem}"`, without extension.
pub fn output_basename(index: usize, subindex: usize, source_name: &str) -> String {
    let (stem, _) = split_ext(source_name);
    format!("{index:05}-{subindex}-{stem}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_splitext() {
        assert_eq!(split_ext("a.b.png"), ("a.b", ".png"));
        assert_eq!(split_ext(".hidden"), (".hidden", ""));
        assert_eq!(split_ext("..a"), ("..a", ""));
        assert_eq!(split_ext("a."), ("a", "."));
        assert_eq!(split_ext("noext"), ("noext", ""));
        assert_eq!(output_basename(3, 1, "cat.jpg"), "00003-1-cat");
        assert_eq!(output_basename(123456, 0, "x.png"), "123456-0-x");
    }
}
