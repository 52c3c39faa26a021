//! The command a persistent-shell terminal runs on the target instead of a login shell: attach
//! to the named tmux session or create it, so the shell outlives the SSH connection (and the
//! relay holding it).
//!
//! One `exec` request carries it, so it is parsed by the user's login shell, whatever that is
//! (bash, zsh, fish, csh): the outer layer is only `exec sh -c '…'`, which all of them read the
//! same way, and the choice between tmux, screen and a plain shell is POSIX `sh` inside. The
//! session name is pasted in unquoted: `SessionName` admits only `sushi-` and hex digits, so it
//! can carry no shell syntax, and neither quote nor space can break out of the single quotes.
//! tmux uses the account's default socket (no `-L`/`-S`), so a terminal attaches to the same
//! server whichever relay opened the SSH connection.

use domain::requests::SessionName;

/// Printed, on one line, when the target has neither tmux nor screen.
pub const NO_MULTIPLEXER: &str = "sushi: neither tmux nor screen on this machine; a plain shell that will not survive a relay restart";

/// `tmux new-session -A -s <name>` if tmux exists, else `screen -xRR <name>`, else the notice
/// and the user's login shell.
pub fn command(name: &SessionName) -> String {
    let name = name.as_str();
    format!(
        "exec sh -c 'if command -v tmux >/dev/null 2>&1; then exec tmux new-session -A -s {name}; \
         elif command -v screen >/dev/null 2>&1; then exec screen -xRR {name}; \
         else echo \"{NO_MULTIPLEXER}\"; exec \"${{SHELL:-/bin/sh}}\" -l; fi'"
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::process::Command;

    use super::*;

    /// A stand-in program that prints its name and arguments.
    fn fake(dir: &Path, program: &str) {
        let path = dir.join(program);
        std::fs::write(&path, format!("#!/bin/sh\necho {program} \"$@\"\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Run the command as a login shell would (`sh -c`), with only `dir` on the PATH, which
    /// holds `sh` (the command's outer layer runs it) and the given stand-ins.
    fn run(dir: &Path) -> String {
        std::os::unix::fs::symlink("/bin/sh", dir.join("sh")).unwrap();
        let name = SessionName::parse("sushi-0123abcd").unwrap();
        let output = Command::new("/bin/sh")
            .arg("-c")
            .arg(command(&name))
            .env("PATH", dir)
            .env("SHELL", "/bin/echo")
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    }

    #[test]
    fn tmux_is_preferred() {
        let dir = tempfile::tempdir().unwrap();
        fake(dir.path(), "tmux");
        fake(dir.path(), "screen");
        assert_eq!(run(dir.path()), "tmux new-session -A -s sushi-0123abcd\n");
    }

    #[test]
    fn screen_when_there_is_no_tmux() {
        let dir = tempfile::tempdir().unwrap();
        fake(dir.path(), "screen");
        assert_eq!(run(dir.path()), "screen -xRR sushi-0123abcd\n");
    }

    #[test]
    fn neither_prints_one_line_and_runs_the_login_shell() {
        let dir = tempfile::tempdir().unwrap();
        // SHELL is /bin/echo here, so "the login shell" prints its argument.
        assert_eq!(run(dir.path()), format!("{NO_MULTIPLEXER}\n-l\n"));
    }
}
