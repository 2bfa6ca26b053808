#!/bin/bash
set -uxo pipefail
source /opt/testbed-env/bin/activate
cd /testbed
git config --global --add safe.directory /testbed
git status
git show --stat
git -c core.fileMode=false diff 19964aac80cc56d3ad1a4dd48db521cc49db897f
git checkout 19964aac80cc56d3ad1a4dd48db521cc49db897f tests/test_parse.py
git apply -v - <<'EOF_114329324912'
diff --git a/tests/test_parse.py b/tests/test_parse.py
index 3d15c80..b7663b3 100644
--- a/tests/test_parse.py
+++ b/tests/test_parse.py
@@ -825,3 +825,19 @@ def test_hyphen_inside_field_name_collision_handling():
     assert result["user-id"] == "1"
     assert result["user_id"] == "2"
     assert result["user.id"] == "3"
+
+
+@pytest.mark.skipif(sys.version_info.major == 2, reason="%z is an invalid directive in Python 2")
+@pytest.mark.parametrize('offset', ['+0530', '-0430', '+00:00', '+0000'])
+def test_flexible_time_preserves_timezone(offset):
+    text = '12:34:56' + offset
+    expected = datetime.strptime(text, '%H:%M:%S%z').timetz()
+    result = parse.parse('{:%H:%M:%S%z}', text)
+    assert result.fixed[0] == expected
+    assert result.fixed[0].utcoffset() == expected.utcoffset()
+
+
+def test_flexible_time_without_timezone_stays_naive():
+    result = parse.parse('{:%H:%M:%S}', '12:34:56')
+    assert result.fixed[0] == datetime(1900, 1, 1, 12, 34, 56).time()
+    assert result.fixed[0].tzinfo is None
EOF_114329324912
: '>>>>> Start Test Output'
pytest -rA --color=no -p no:cacheprovider -o addopts= --timeout=10 tests/test_parse.py
: '>>>>> End Test Output'
git checkout 19964aac80cc56d3ad1a4dd48db521cc49db897f tests/test_parse.py
