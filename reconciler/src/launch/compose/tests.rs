//! The reference's §2.4 vectors, character for character, and hostile values.

use super::*;
use crate::model::{SourceFile, load_and_validate};

/// The §2.4 set-up: job type `fife_launch -c gen.cfg` with three parameters; stage overrides
/// using `%(dataset)s`, `%(version)s` and the keyword `fred`.
fn graph(host: &str, keyword: &str) -> DesiredGraph {
    let yaml = format!(
        r#"
apiVersion: cascade.dev/v1alpha1
kind: LoginSetup
metadata: {{name: ls, namespace: exp}}
spec: {{host: "{host}", account: prod, setup: "source /opt/%(experiment)s/setup.sh"}}
---
apiVersion: cascade.dev/v1alpha1
kind: JobType
metadata: {{name: jt, namespace: exp}}
spec:
  launchScript: fife_launch -c gen.cfg
  parameters: [["--stage=", "gen"], ["-Osubmit.N=", "5"], ["-Oglobal.release=", "v0"]]
  outputFilePatterns: ["%.root"]
---
apiVersion: cascade.dev/v1alpha1
kind: Campaign
metadata: {{name: camp, namespace: exp}}
spec:
  keywords: {{fred: '{keyword}'}}
  defaults:
    parameterOverrides: [["-Oglobal.site=", "FNAL"]]
---
apiVersion: cascade.dev/v1alpha1
kind: CampaignStage
metadata: {{name: gen, namespace: exp}}
spec:
  campaign: camp
  loginSetup: ls
  jobType: jt
  softwareVersion: v1_1
  mergeDefaultOverrides: true
  parameterOverrides:
    - ["-Oglobal.sam_dataset=", "%(dataset)s"]
    - ["-Oglobal.release=", "%(version)s"]
    - ["-Ojob_output.dest=", "'%%(global.outdir)s/%(fred)s'"]
  testParameterOverrides: [["-Osubmit.N=", "1"]]
"#
    );
    let (_, v) = load_and_validate(&[SourceFile {
        path: "t.yaml".into(),
        bytes: yaml.into_bytes().into(),
    }]);
    v.graph.unwrap_or_else(|| panic!("{:?}", v.diagnostics))
}

fn launch(g: &DesiredGraph, dataset: &str, test: bool, merge: bool, explicit: &[Param]) -> Launch {
    let mut stage = g.stages[0].clone();
    stage.merge_default_overrides = merge;
    let req = LaunchRequest {
        stage: &stage,
        dataset: Some(dataset),
        submission_id: "42",
        parent_submission_id: None,
        test,
        explicit_overrides: explicit,
        experimenter: "alice",
        settings: &Default::default(),
    };
    compose(g, &req).unwrap()
}

#[test]
fn normal_launch_matches_reference() {
    let g = graph("localhost", "kw_fred");
    assert_eq!(
        launch(&g, "ds_A", false, false, &[]).command,
        "fife_launch -c gen.cfg --stage=gen -Osubmit.N=5 -Oglobal.release=v1_1 -Oglobal.sam_dataset=ds_A -Ojob_output.dest='%(global.outdir)s/kw_fred'"
    );
}

#[test]
fn test_launch_with_merged_defaults_matches_reference() {
    let g = graph("localhost", "kw_fred");
    assert_eq!(
        launch(&g, "ds_A", true, true, &[]).command,
        "fife_launch -c gen.cfg --stage=gen -Osubmit.N=1 -Oglobal.release=v1_1 -Oglobal.site=FNAL -Oglobal.sam_dataset=ds_A -Ojob_output.dest='%(global.outdir)s/kw_fred'"
    );
}

#[test]
fn recovery_overrides_beat_test_overrides() {
    let g = graph("localhost", "kw_fred");
    let recovery = [
        Param::new("-Osubmit.memory=", "4000MB"),
        Param::new("-Osubmit.N=", "20"),
    ];
    assert_eq!(
        launch(&g, "ds_A", true, true, &recovery).command,
        "fife_launch -c gen.cfg --stage=gen -Osubmit.N=20 -Oglobal.release=v1_1 -Oglobal.site=FNAL -Oglobal.sam_dataset=ds_A -Ojob_output.dest='%(global.outdir)s/kw_fred' -Osubmit.memory=4000MB"
    );
}

#[test]
fn local_launch_runs_setup_then_command_in_sh() {
    let g = graph("localhost", "kw_fred");
    let l = launch(&g, "ds_A", false, false, &[]);
    assert_eq!(l.argv[..2], ["/bin/sh".to_string(), "-c".to_string()]);
    assert!(l.argv[2].starts_with("source /opt/exp/setup.sh\nfife_launch"));
    assert!(l.env.contains(&("POMS4_SUBMISSION_ID".into(), "42".into())));
    assert!(
        l.env
            .contains(&("POMS_CAMPAIGN_NAME".into(), "camp__gen".into()))
    );
    assert!(
        l.env
            .contains(&("POMS4_TEST_LAUNCH".into(), "False".into()))
    );
}

#[test]
fn remote_launch_goes_through_ssh_with_exports() {
    let g = graph("%(experiment)sgpvm01.example.org", "kw_fred");
    let l = launch(&g, "ds_A", false, false, &[]);
    assert_eq!(
        l.argv[..5],
        [
            "ssh",
            "-o",
            "BatchMode=yes",
            "--",
            "prod@expgpvm01.example.org"
        ]
        .map(String::from)
    );
    assert!(l.argv[5].contains("export POMS_TASK_ID=42\n"));
    assert!(
        l.display.starts_with(
            "ssh -o BatchMode=yes -- prod@expgpvm01.example.org 'source /opt/exp/setup.sh\nfife_launch"
        ),
        "{}",
        l.display
    );
}

/// What is shown as `runs:` is the shell that runs, quoted so that it can be pasted: a setup
/// ending in `;` gives no `;;`, and the shell reads back exactly the script.
#[test]
fn the_shown_launch_is_shell_that_runs_the_same_script() {
    let g = graph("localhost", "kw_fred");
    let l = launch(&g, "ds_A", false, false, &[]);
    assert_eq!(l.display, format!("/bin/sh -c {}", quote(&l.argv[2])));
    // `sh -c 'printf %s "$0"' <display's argument>` prints the script the launch runs.
    let quoted = l.display.strip_prefix("/bin/sh -c ").unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf %s {quoted}"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), l.argv[2]);
    assert!(!l.display.contains(";;"), "{}", l.display);
}

/// POMS's meanings: `POMS_TEST` names the POMS instance (empty in production), not a test
/// launch (`POMS4_TEST_LAUNCH`); `UPLOADS` is the experiment's upload area; the local batch
/// system's variables are in the composed environment, so `plan` shows them.
#[test]
fn the_environment_carries_pomss_meanings_and_the_batch_systems_needs() {
    let g = graph("localhost", "kw_fred");
    let settings = LaunchSettings {
        state_dir: "/srv/cascade".into(),
        uploads: "/srv/uploads/{experiment}".into(),
        poms_test: "int".into(),
    };
    let stage = g.stages.first().unwrap();
    let req = LaunchRequest {
        stage,
        dataset: Some("ds_A"),
        submission_id: "42",
        parent_submission_id: None,
        test: true,
        explicit_overrides: &[],
        experimenter: "alice",
        settings: &settings,
    };
    let l = compose(&g, &req).unwrap();
    let env = |k: &str| {
        l.env
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k}"))
    };
    assert_eq!(env("POMS_TEST"), "int");
    assert_eq!(env("POMS4_TEST_LAUNCH"), "True");
    assert_eq!(env("UPLOADS"), "/srv/uploads/exp");
    assert_eq!(env("CASCADE_STATE_DIR"), "/srv/cascade");
    assert!(!env("CASCADE_OUTPUT_PATTERNS").is_empty());
}

/// Runs the composed command's argument list through a real shell and returns the words it
/// sees, to prove a hostile value stays one literal word.
fn words_seen_by_shell(command: &str) -> Vec<String> {
    let script = command.replacen("fife_launch -c gen.cfg", "printf '%s\\0'", 1);
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}");
    String::from_utf8(out.stdout)
        .unwrap()
        .split('\0')
        .map(String::from)
        .collect()
}

#[test]
fn hostile_values_cannot_inject_shell() {
    for hostile in [
        "a; touch /tmp/pwned",
        "$(touch /tmp/pwned)",
        "`id`",
        "it's \"quoted\"",
        "two\nlines",
        "100%",
        "$HOME",
    ] {
        // As a dataset (unquoted context) and as a keyword inside the author's single quotes.
        let g = graph("localhost", &hostile.replace('\'', "''").replace('\n', " "));
        let l = launch(&g, hostile, false, false, &[]);
        let words = words_seen_by_shell(&l.command);
        assert!(
            words.contains(&format!("-Oglobal.sam_dataset={hostile}")),
            "{hostile:?}: {words:?}"
        );
        let kw = hostile.replace('\n', " ");
        assert!(
            words.contains(&format!("-Ojob_output.dest=%(global.outdir)s/{kw}")),
            "{hostile:?}: {words:?}"
        );
    }
    assert!(!std::path::Path::new("/tmp/pwned").exists());
}

/// The arguments a value must arrive as, from the value.
type Expected = fn(&str) -> Vec<String>;

/// Each accepted context, as a template that prints its arguments NUL-separated, and the
/// arguments the value `v` must arrive as.
fn accepted_contexts() -> Vec<(&'static str, Expected)> {
    vec![
        ("printf '%%s\\0' %(v)s", |v| vec![v.into()]),
        ("printf '%%s\\0' '%(v)s'", |v| vec![v.into()]),
        ("printf '%%s\\0' \"%(v)s\"", |v| vec![v.into()]),
        ("printf '%%s\\0' pre%(v)spost", |v| {
            vec![format!("pre{v}post")]
        }),
        ("printf '%%s\\0' 'x'%(v)s\"y\"", |v| vec![format!("x{v}y")]),
        ("printf '%%s\\0' \"a %(v)s b\" '%(v)s'", |v| {
            vec![format!("a {v} b"), v.into()]
        }),
        ("x=%(v)s; printf '%%s\\0' \"$x\"", |v| vec![v.into()]),
        (
            "printf '%%s\\0' \"$(printf ok)\" %(v)s `printf ok` \"%(v)s\"",
            |v| vec!["ok".into(), v.into(), "ok".into(), v.into()],
        ),
        (
            "printf '%%s\\0' --k=%(v)s ${#HOME} >/dev/null; printf '%%s\\0' %(v)s # done",
            |v| vec![v.into()],
        ),
        (
            "# %%(v)s is not substituted in a comment\nprintf '%%s\\0' %(v)s",
            |v| vec![v.into()],
        ),
    ]
}

/// Runs `text` with `shell -c` and splits what it printed at NULs.
fn run_in(shell: &str, text: &str) -> (Vec<String>, String, bool) {
    let out = std::process::Command::new(shell)
        .arg("-c")
        .arg(text)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("run the shell");
    let mut args: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split('\0')
        .map(String::from)
        .collect();
    args.pop(); // after the last NUL
    (
        args,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

fn assert_value_stays_a_value(v: &str) -> Result<(), String> {
    for (template, expected) in accepted_contexts() {
        let text = super::render(template, &|n| (n == "v").then(|| v.to_string()))
            .map_err(|e| format!("{template:?} refused: {e}"))?;
        for shell in ["dash", "bash"] {
            let (args, stderr, ok) = run_in(shell, &text);
            if !ok || !stderr.is_empty() || args != expected(v) {
                return Err(format!(
                    "{shell}: value {v:?} in {template:?} rendered as {text:?}: args {args:?}, stderr {stderr:?}"
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn shell_metacharacters_stay_literal_through_dash_and_bash() {
    for v in [
        "",
        "'",
        "\"",
        "\\",
        "$(touch /tmp/cascade-pwned)",
        "`touch /tmp/cascade-pwned`",
        "a'b\"c$d`e\\f",
        "x\n; touch /tmp/cascade-pwned\n#",
        "${HOME}",
        "$((1+1))",
        "*",
        "-n",
        "a b\tc",
        "'; echo owned; '",
        "\"; echo owned; \"",
        "%s %(v)s %%",
        "é ✓",
    ] {
        assert_value_stays_a_value(v).unwrap();
    }
    assert!(!std::path::Path::new("/tmp/cascade-pwned").exists());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
    /// Random values of shell metacharacters, quotes, newlines and spaces, in every accepted
    /// context, arrive through both shells as exactly themselves, and nothing else runs.
    #[test]
    fn random_values_stay_literal_through_dash_and_bash(v in "[ -~\n\té]{0,16}") {
        assert_value_stays_a_value(&v).map_err(proptest::test_runner::TestCaseError::fail)?;
    }
}

#[test]
fn values_in_nested_shell_comments_and_heredocs_are_refused() {
    for template in [
        "echo \"$(echo %(v)s)\"",
        "echo `echo %(v)s`",
        "echo \"${X:-%(v)s}\"",
        "echo $((%(v)s))",
        "echo $'%(v)s'",
        "echo x # %(v)s",
        "cat <<EOF\n%(v)s\nEOF",
    ] {
        let e = super::render(template, &|_| Some("x".into())).unwrap_err();
        assert!(
            e.0.contains("cannot be substituted safely"),
            "{template:?}: {e}"
        );
    }
}
