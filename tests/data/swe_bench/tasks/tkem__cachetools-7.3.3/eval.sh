#!/bin/bash
set -uxo pipefail
source /opt/testbed-env/bin/activate
cd /testbed
git config --global --add safe.directory /testbed
git status
git show --stat
git -c core.fileMode=false diff 4a0bebe7a6ac0625608fb676d5c52ff930964a7a
git checkout 4a0bebe7a6ac0625608fb676d5c52ff930964a7a tests/__init__.py tests/test_tlru.py tests/test_ttl.py
git apply -v - <<'EOF_114329324912'
diff --git a/tests/__init__.py b/tests/__init__.py
index a4afce6..6a23e7f 100644
--- a/tests/__init__.py
+++ b/tests/__init__.py
@@ -457,6 +457,18 @@ class CacheTestMixin(SimplifiedTestCaseProtocol):
         self.assertEqual(1, len(cache))
         self.assertEqual(4, cache.currsize)
 
+    def test_iter_update(self):
+        cache = self.Cache(maxsize=3)
+        cache.update({1: 1, 2: 2, 3: 3})
+
+        # updating items while iterating visits each key once, in order
+        keys = []
+        for key in cache:
+            keys.append(key)
+            cache[key] = key * 10
+        self.assertEqual([1, 2, 3], keys)
+        self.assertEqual([10, 20, 30], list(cache.values()))
+
     def test_pickle(self):
         import pickle
 
diff --git a/tests/test_tlru.py b/tests/test_tlru.py
index 5869a52..a204a9b 100644
--- a/tests/test_tlru.py
+++ b/tests/test_tlru.py
@@ -447,3 +447,46 @@ class TLRUCacheTest(unittest.TestCase, CacheTestMixin):
         source.timer.tick()
         self.assertEqual([], list(source))
         self.assertEqual([4], list(cache))
+
+    def test_tlru_deepcopy_timer(self):
+        import copy
+
+        class DeepCopyTimer(Timer):
+            def __deepcopy__(self, memo):
+                return copy.copy(self)
+
+        source = TLRUCache[int, int, int](
+            maxsize=2, ttu=lambda _, v, t: t + v, timer=DeepCopyTimer()
+        )
+        source[1] = 1
+
+        # a timer may define __deepcopy__ itself
+        cache = copy.deepcopy(source)
+        self.assertEqual([1], list(cache))
+
+        # the copy has a timer of its own
+        cache.timer.tick()
+        self.assertEqual([], list(cache))
+        self.assertEqual([1], list(source))
+
+    def test_tlru_iter_modify(self):
+        cache = TLRUCache[int, int, int](
+            maxsize=6, ttu=lambda _, v, t: t + 2, timer=Timer()
+        )
+        cache.update({1: 1, 2: 2, 3: 3})
+
+        # items inserted while iterating are not visited
+        keys = []
+        for key in cache:
+            keys.append(key)
+            cache[key + 10] = key
+        self.assertEqual([1, 2, 3], keys)
+        self.assertEqual([1, 2, 3, 11, 12, 13], list(cache))
+
+        # items removed while iterating are skipped
+        keys = []
+        for key in cache:
+            keys.append(key)
+            cache.clear()
+        self.assertEqual([1], keys)
+        self.assertEqual([], list(cache))
diff --git a/tests/test_ttl.py b/tests/test_ttl.py
index 7479ac0..59f9f07 100644
--- a/tests/test_ttl.py
+++ b/tests/test_ttl.py
@@ -317,3 +317,42 @@ class TTLCacheTest(unittest.TestCase, CacheTestMixin):
         # items expire in the copy as in its source
         self.assertEqual([3, 4], list(cache))
         self.assertEqual([3], list(source))
+
+    def test_ttl_deepcopy_timer(self):
+        import copy
+
+        class DeepCopyTimer(Timer):
+            def __deepcopy__(self, memo):
+                return copy.copy(self)
+
+        source = TTLCache[int, int, int](maxsize=2, ttl=1, timer=DeepCopyTimer())
+        source[1] = 1
+
+        # a timer may define __deepcopy__ itself
+        cache = copy.deepcopy(source)
+        self.assertEqual([1], list(cache))
+
+        # the copy has a timer of its own
+        cache.timer.tick()
+        self.assertEqual([], list(cache))
+        self.assertEqual([1], list(source))
+
+    def test_ttl_iter_modify(self):
+        cache = TTLCache[int, int, int](maxsize=6, ttl=2, timer=Timer())
+        cache.update({1: 1, 2: 2, 3: 3})
+
+        # items inserted while iterating are not visited
+        keys = []
+        for key in cache:
+            keys.append(key)
+            cache[key + 10] = key
+        self.assertEqual([1, 2, 3], keys)
+        self.assertEqual([1, 2, 3, 11, 12, 13], list(cache))
+
+        # items removed while iterating are skipped
+        keys = []
+        for key in cache:
+            keys.append(key)
+            cache.clear()
+        self.assertEqual([1], keys)
+        self.assertEqual([], list(cache))
EOF_114329324912
: '>>>>> Start Test Output'
pytest -rA --color=no -p no:cacheprovider -o addopts= --timeout=10 tests/test_tlru.py tests/test_ttl.py
: '>>>>> End Test Output'
git checkout 4a0bebe7a6ac0625608fb676d5c52ff930964a7a tests/__init__.py tests/test_tlru.py tests/test_ttl.py
