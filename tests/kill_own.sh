# kill_own.sh — sourced by the shell tests that start servers in the background.
#
# kill_own SIGNAL PID...: sends SIGNAL to each PID that is still a child of this shell, and to no
# other process. A test's server that exited and was reaped leaves its PID free, and with pid_max
# 32768 a busy CI machine hands it to another process within minutes: a blind `kill -9 $pid` in a
# cleanup trap once took down another test's daemon running in parallel.
kill_own() {
    local signal=$1 p stat
    shift
    for p in "$@"; do
        [ -n "$p" ] && stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        stat=${stat##*) }                   # past "pid (comm) ": state, then the parent's PID
        [ "$(echo "$stat" | cut -d' ' -f2)" = "$$" ] && kill "-$signal" "$p" 2>/dev/null
    done
    return 0
}
