use super::*;

fn context_after(text: &str) -> Context {
    let mut t = Tracker::default();
    t.feed(text);
    t.context()
}

#[test]
fn tracks_quotes() {
    let mut t = Tracker::default();
    t.feed("echo 'a");
    assert_eq!(t.context(), Context::Single);
    t.feed("' \"b");
    assert_eq!(t.context(), Context::Double);
    t.feed("\\\" still\"");
    assert_eq!(t.context(), Context::Unquoted);
}

#[test]
fn nested_shell_comments_and_heredocs_are_refused() {
    for text in [
        "echo \"$(echo ",
        "echo $(echo ",
        "echo \"`echo ",
        "echo `echo ",
        "echo \"$(echo \"",
        "echo ${x:-",
        "echo \"${x:-",
        "echo $((1 + ",
        "echo $'",
        "echo x # note ",
        "#!/bin/sh\n# ",
        "cat <<EOF\n",
        "cat <<'EOF'\nbody\nEOF\necho ",
        "x=$(case a in a) echo b;; esac) ",
    ] {
        assert!(
            matches!(context_after(text), Context::Refused(_)),
            "{text:?}: {:?}",
            context_after(text)
        );
    }
}

#[test]
fn closed_constructs_give_the_context_back() {
    for (text, want) in [
        ("echo $(date) ", Context::Unquoted),
        ("echo \"$(date '+%s') ", Context::Double),
        ("echo `date` ", Context::Unquoted),
        ("echo ${#x} ", Context::Unquoted),
        ("echo ${x:-\"a)b\"} '", Context::Single),
        ("echo $((1 + (2 * 3))) ", Context::Unquoted),
        ("echo $(echo \")\" ')' (cd /; pwd)) ", Context::Unquoted),
        ("echo a#b ", Context::Unquoted),
        ("# comment\necho ", Context::Unquoted),
        ("echo \\# ", Context::Unquoted),
        ("echo $# ", Context::Unquoted),
    ] {
        assert_eq!(context_after(text), want, "{text:?}");
    }
}

#[test]
fn quotes_only_when_needed() {
    assert_eq!(quote("ds_A"), "ds_A");
    assert_eq!(quote("a b"), "'a b'");
    assert_eq!(quote("it's"), r"'it'\''s'");
    assert_eq!(quote(""), "''");
}
