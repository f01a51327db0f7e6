#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
#
# The test suite under valgrind (memcheck): the unit tests, and the
# integration tests with every popfetch run (its worker processes too)
# under valgrind. Any memory error or definite leak fails. Run from a
# build directory after "make check" built everything:
#   sh $top_srcdir/tests/valgrind.sh
# Prints "N passed, N failed" last. The fuzz, man page and unit-file tests
# run no popfetch and are left to make check.
set -u
command -v valgrind >/dev/null 2>&1 || { echo "valgrind missing"; exit 77; }
build=$(pwd)
top_srcdir=${top_srcdir:-$(sed -n 's/^abs_top_srcdir = //p' Makefile)}
export top_srcdir
vg="valgrind -q --error-exitcode=99 --leak-check=full"
vg="$vg --errors-for-leak-kinds=definite --show-leak-kinds=definite"
logs=$(mktemp -d "${TMPDIR:-/tmp}/popfetch-valgrind.XXXXXX") || exit 99
cat >"$logs/popfetch" <<WRAP
#!/bin/sh
exec $vg --log-file=$logs/vg.%p "$build/popfetch" "\$@"
WRAP
chmod +x "$logs/popfetch"
passed=0 failed=0
have_fuse3=$(sed -n 's/^have_fuse3 = //p' Makefile)
for u in "$build"/tests/unit/test_*; do
	[ -x "$u" ] || continue
	# A password_command child that cannot exec ends with _exit() after
	# fork: its inherited memory is no leak of ours.
	if POPFETCH_VALGRIND=1 $vg --child-silent-after-fork=yes "$u" \
	    >"$logs/$(basename "$u").out" 2>&1
	then passed=$((passed + 1)); echo "PASS: $(basename "$u")"
	else failed=$((failed + 1)); echo "FAIL: $(basename "$u")"
		tail -n 30 "$logs/$(basename "$u").out"
	fi
done
# One integration test under valgrind: its output in $logs/NAME.out, and
# "PASS" or "FAIL" in $logs/NAME.result.
cat >"$logs/run1" <<RUN1
#!/bin/sh
name=\$(basename "\$1" .test)
if T_NO_LIMITS=valgrind POPFETCH=$logs/popfetch \\
    FAULTSHIM=$build/tests/faultshim.so \\
    POWERFS=$build/tests/powerfs HAVE_FUSE3=$have_fuse3 \\
    PYTHON3=${PYTHON3:-python3} top_srcdir=$top_srcdir top_builddir=$build \\
    sh "\$1" >"$logs/\$name.out" 2>&1
then echo PASS >"$logs/\$name.result"
else echo FAIL >"$logs/\$name.result"
fi
echo "\$(cat "$logs/\$name.result"): \$name"
RUN1
chmod +x "$logs/run1"
# VALGRIND_JOBS tests at a time (default 2: valgrind is slow, the tests
# mostly wait on it), the longest first so that they do not end alone.
for t in "$top_srcdir"/tests/*.test; do
	name=$(basename "$t" .test)
	case $name in fuzz|man-lint|systemd) continue ;; esac
	case $name in
	reload | power-loss* | interop-* | deliver-* | crash | daemon)
		echo "0 $t" ;;
	*) echo "1 $t" ;;
	esac
done | sort -k1,1n -s | cut -d' ' -f2- |
    xargs -n 1 -P "${VALGRIND_JOBS:-2}" "$logs/run1"
for t in "$top_srcdir"/tests/*.test; do
	name=$(basename "$t" .test)
	case $name in fuzz|man-lint|systemd) continue ;; esac
	if [ "$(cat "$logs/$name.result" 2>/dev/null)" = PASS ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "FAIL: $name"
		grep -v '^#   ' "$logs/$name.out" | tail -n 15
	fi
done
for f in "$logs"/vg.*; do
	[ -s "$f" ] || continue
	echo "valgrind reports in $f:"
	cat "$f"
	failed=$((failed + 1))
done
[ "$failed" = 0 ] && rm -rf "$logs"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
