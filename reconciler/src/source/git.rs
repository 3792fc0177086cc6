//! The git source: a branch of a repository, fetched into the state directory (libgit2 over
//! `file://`, `git://` and `http(s)://`), read at its head commit as `(path, bytes)` pairs
//! for the one loader, and materialised as a checkout per applied revision so that launch
//! scripts kept in the repository run as they do with the directory source.

use std::path::{Path, PathBuf};

use git2::{FetchOptions, FetchPrune, ObjectType, Oid, RemoteCallbacks, Repository, TreeWalkMode};

use crate::model::SourceFile;
use crate::model::load::MAX_FILE_BYTES;

/// Where a controller follows its definitions.
#[derive(Clone, Debug)]
pub struct GitSource {
    pub url: String,
    pub branch: String,
    /// The directory of the repository whose YAML files are read (`.` for all of it).
    pub path: String,
    /// Credentials for http(s): `user:password` or a token, from `--git-credentials FILE`
    /// or `CASCADE_GIT_USERNAME` and `CASCADE_GIT_PASSWORD`. Never printed.
    pub credentials: Option<(String, String)>,
}

/// What a fetch found at the branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Head {
    Commit(String),
    /// The branch does not exist (deleted, or not pushed yet): nothing changes until it does.
    Missing,
}

pub type Result<T> = std::result::Result<T, String>;

/// The URL as it may be shown: without a password or token written into it.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

fn error(what: &str, url: &str, e: git2::Error) -> String {
    // libgit2 messages may quote the URL: never with its credentials.
    let message = e.message().replace(url, &redact(url));
    format!("{what} {}: {message}", redact(url))
}

impl GitSource {
    fn mirror(&self, state: &Path) -> PathBuf {
        state.join("git").join("repo.git")
    }

    fn open(&self, state: &Path) -> Result<Repository> {
        let dir = self.mirror(state);
        if dir.join("HEAD").exists() {
            Repository::open_bare(&dir).map_err(|e| format!("cannot open {}: {e}", dir.display()))
        } else {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            Repository::init_bare(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
        }
    }

    fn tracking_ref(&self) -> String {
        format!("refs/remotes/origin/{}", self.branch)
    }

    /// Fetches the branch (a force-push replaces it; a deleted branch is pruned) and says
    /// where its head is now.
    pub fn fetch(&self, state: &Path) -> Result<Head> {
        let repo = self.open(state)?;
        let mut remote = repo
            .remote_anonymous(&self.url)
            .map_err(|e| error("cannot use", &self.url, e))?;
        let mut callbacks = RemoteCallbacks::new();
        let credentials = self.credentials.clone();
        let mut tries = 0;
        callbacks.credentials(move |_, user_from_url, _| {
            // libgit2 asks again after a refusal: answer once, then give up.
            tries += 1;
            match (&credentials, tries) {
                (Some((user, password)), 1) => git2::Cred::userpass_plaintext(user, password),
                (None, 1) if user_from_url.is_some() => git2::Cred::default(),
                _ => Err(git2::Error::from_str(
                    "authentication failed: give credentials with --git-credentials FILE or CASCADE_GIT_USERNAME/CASCADE_GIT_PASSWORD",
                )),
            }
        });
        let mut options = FetchOptions::new();
        options.remote_callbacks(callbacks);
        options.prune(FetchPrune::On);
        let refspec = format!("+refs/heads/{}:{}", self.branch, self.tracking_ref());
        remote
            .fetch(&[&refspec], Some(&mut options), None)
            .map_err(|e| error("cannot fetch", &self.url, e))?;
        // A refspec for a branch the remote does not have fetches nothing and prunes nothing:
        // ask the remote's list of refs whether the branch still exists.
        let exists = remote
            .list()
            .map_err(|e| error("cannot list the branches of", &self.url, e))?
            .iter()
            .any(|h| h.name() == format!("refs/heads/{}", self.branch));
        if !exists {
            let _ = repo
                .find_reference(&self.tracking_ref())
                .and_then(|mut r| r.delete());
            return Ok(Head::Missing);
        }
        let oid = repo
            .refname_to_id(&self.tracking_ref())
            .map_err(|e| format!("the fetched branch `{}` has no commit: {e}", self.branch))?;
        Ok(Head::Commit(oid.to_string()))
    }

    /// The YAML files under `path` at `commit`, named by their path in the repository.
    pub fn files(&self, state: &Path, commit: &str) -> Result<Vec<SourceFile>> {
        let repo = self.open(state)?;
        yaml_files(&repo, commit, &self.path)
    }

    /// The checkout of `commit` (the whole tree) under the state directory, made once.
    pub fn checkout(&self, state: &Path, commit: &str) -> Result<PathBuf> {
        let dir = checkouts(state).join(commit);
        if dir.join(".cascade-complete").exists() {
            return Ok(dir);
        }
        let repo = self.open(state)?;
        let tree = tree_at(&repo, commit)?;
        let partial = checkouts(state).join(format!("{commit}.partial"));
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial)
            .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
        let mut failure = None;
        tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
            let target = partial.join(dir).join(entry.name().unwrap_or("_"));
            if let Err(e) = write_entry(&repo, entry, &target) {
                failure = Some(format!("cannot write {}: {e}", target.display()));
                return git2::TreeWalkResult::Abort;
            }
            git2::TreeWalkResult::Ok
        })
        .ok();
        if let Some(e) = failure {
            return Err(e);
        }
        std::fs::write(partial.join(".cascade-complete"), commit).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&partial, &dir).map_err(|e| format!("cannot place the checkout: {e}"))?;
        Ok(dir)
    }
}

/// The YAML files under `path` at a revision (`main`, `origin/feature`, a commit) of the
/// repository at or above `dir`: what `cascade plan --base --head` compares. A revision
/// without that directory, or without YAML files in it, has no definitions (the change under
/// review adds the first ones).
pub fn files_at_ref(dir: &Path, rev: &str, path: &str) -> Result<Vec<SourceFile>> {
    let repo = Repository::discover(dir).map_err(|e| {
        format!(
            "`{}` is not in a git repository: {}",
            dir.display(),
            e.message()
        )
    })?;
    let commit = repo
        .revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| format!("no revision `{rev}` in {}: {}", dir.display(), e.message()))?;
    Ok(yaml_files_if_any(&repo, &commit.id().to_string(), path)?.unwrap_or_default())
}

/// The YAML files under `path` at `commit`; a revision without them is refused (there is
/// nothing to apply).
fn yaml_files(repo: &Repository, commit: &str, path: &str) -> Result<Vec<SourceFile>> {
    yaml_files_if_any(repo, commit, path)?.ok_or_else(|| {
        format!(
            "no *.yaml or *.yml file under `{path}` at commit {}",
            short(commit)
        )
    })
}

/// The YAML files under `path` at `commit`, named by their path in the repository, sorted;
/// `None` when the directory is missing or holds none.
fn yaml_files_if_any(
    repo: &Repository,
    commit: &str,
    path: &str,
) -> Result<Option<Vec<SourceFile>>> {
    let tree = tree_at(repo, commit)?;
    let sub = path.trim_matches('/');
    let whole = sub.is_empty() || sub == ".";
    let root = if whole {
        tree
    } else {
        match tree
            .get_path(Path::new(sub))
            .and_then(|e| e.to_object(repo))
            .and_then(|o| o.peel_to_tree())
        {
            Ok(t) => t,
            Err(_) => return Ok(None),
        }
    };
    let prefix = if whole {
        String::new()
    } else {
        format!("{sub}/")
    };
    let mut found: Vec<(String, Oid)> = Vec::new();
    root.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let name = entry.name().unwrap_or("");
        if name.starts_with('.') {
            return git2::TreeWalkResult::Skip;
        }
        if entry.kind() == Some(ObjectType::Blob)
            && (name.ends_with(".yaml") || name.ends_with(".yml"))
        {
            found.push((format!("{prefix}{dir}{name}"), entry.id()));
        }
        git2::TreeWalkResult::Ok
    })
    .map_err(|e| format!("cannot read commit {}: {e}", short(commit)))?;
    if found.is_empty() {
        return Ok(None);
    }
    found.sort();
    found
        .into_iter()
        .map(|(path, id)| {
            let blob = repo
                .find_blob(id)
                .map_err(|e| format!("cannot read `{path}`: {e}"))?;
            // The loader refuses a file over its limit from its size alone.
            let content = blob.content();
            let bytes = content[..content.len().min(MAX_FILE_BYTES + 1)].to_vec();
            Ok(SourceFile {
                path,
                bytes: bytes.into(),
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// Where checkouts live.
pub fn checkouts(state: &Path) -> PathBuf {
    state.join("git").join("checkouts")
}

/// Removes the checkouts of revisions not in `keep` (the applied one and those of launches
/// that may still run).
pub fn clean_checkouts(state: &Path, keep: &[String]) {
    let Ok(entries) = std::fs::read_dir(checkouts(state)) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !keep.contains(&name) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn write_entry(repo: &Repository, entry: &git2::TreeEntry, target: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match entry.kind() {
        Some(ObjectType::Tree) => std::fs::create_dir_all(target),
        Some(ObjectType::Blob) => {
            let blob = repo.find_blob(entry.id()).map_err(std::io::Error::other)?;
            if entry.filemode() == 0o120000 {
                let to = String::from_utf8_lossy(blob.content()).into_owned();
                return std::os::unix::fs::symlink(to, target);
            }
            std::fs::write(target, blob.content())?;
            let mode = if entry.filemode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            std::fs::set_permissions(target, std::fs::Permissions::from_mode(mode))
        }
        // Submodules are not fetched: a launch cannot rely on them.
        _ => Ok(()),
    }
}

fn tree_at<'r>(repo: &'r Repository, commit: &str) -> Result<git2::Tree<'r>> {
    Oid::from_str(commit)
        .and_then(|oid| repo.find_commit(oid))
        .and_then(|c| c.tree())
        .map_err(|e| format!("cannot read commit {}: {e}", short(commit)))
}

/// A commit id as people read it.
pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_url_are_never_shown() {
        assert_eq!(
            redact("https://bot:s3cret@git.example.org/exp/campaigns.git"),
            "https://***@git.example.org/exp/campaigns.git"
        );
        assert_eq!(
            redact("https://git.example.org/a@b.git"),
            "https://git.example.org/a@b.git"
        );
        assert_eq!(redact("file:///srv/repo.git"), "file:///srv/repo.git");
    }
}
