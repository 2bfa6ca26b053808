#!/bin/bash
set -uxo pipefail
cd /testbed
git config --global --add safe.directory /testbed
git status
git show --stat
git -c core.fileMode=false diff 1cb29c6d11e8f73c9886ca2d7cb4c1b6757a0e4b
git checkout 1cb29c6d11e8f73c9886ca2d7cb4c1b6757a0e4b tests/__init__.py tests/test_lfu.py
git apply -v - <<'EOF_114329324912'
diff --git a/tests/__init__.py b/tests/__init__.py
index 40d194a..1c82c81 100644
--- a/tests/__init__.py
+++ b/tests/__init__.py
@@ -464,7 +464,10 @@ class CacheTestMixin(SimplifiedTestCaseProtocol):
         source.update({1: 1, 2: 2})
 
         cache = pickle.loads(pickle.dumps(source))
+        self.assertIsNot(source, cache)
         self.assertEqual(source, cache)
+        self.assertEqual(source.maxsize, cache.maxsize)
+        self.assertEqual(source.currsize, cache.currsize)
 
         self.assertEqual(2, len(cache))
         self.assertEqual(1, cache[1])
@@ -472,13 +475,15 @@ class CacheTestMixin(SimplifiedTestCaseProtocol):
 
         cache[3] = 3
         self.assertEqual(2, len(cache))
+        self.assertEqual(2, cache.currsize)
         self.assertEqual(3, cache[3])
         self.assertTrue(1 in cache or 2 in cache)
 
-        cache[4] = 4
-        self.assertEqual(2, len(cache))
-        self.assertEqual(4, cache[4])
-        self.assertTrue(1 in cache or 2 in cache or 3 in cache)
+        self.assertEqual(2, len(source))
+        self.assertEqual(2, source.currsize)
+        self.assertIn(1, source)
+        self.assertIn(2, source)
+        self.assertNotIn(3, source)
 
         self.assertEqual(cache, pickle.loads(pickle.dumps(cache)))
 
@@ -493,3 +498,87 @@ class CacheTestMixin(SimplifiedTestCaseProtocol):
             cache = pickle.loads(pickle.dumps(source))
             self.assertEqual(n, len(cache))
             self.assertEqual(source, cache)
+
+    def test_copy(self):
+        import copy
+
+        source = self.Cache(maxsize=2)
+        source.update({1: 1, 2: 2})
+
+        cache = copy.copy(source)
+        self.assertIsNot(source, cache)
+        self.assertEqual(source, cache)
+        self.assertEqual(source.maxsize, cache.maxsize)
+        self.assertEqual(source.currsize, cache.currsize)
+
+        self.assertEqual(2, len(cache))
+        self.assertEqual(1, cache[1])
+        self.assertEqual(2, cache[2])
+
+        cache[3] = 3
+        self.assertEqual(2, len(cache))
+        self.assertEqual(2, cache.currsize)
+        self.assertEqual(3, cache[3])
+        self.assertTrue(1 in cache or 2 in cache)
+
+        self.assertEqual(2, len(source))
+        self.assertEqual(2, source.currsize)
+        self.assertIn(1, source)
+        self.assertIn(2, source)
+        self.assertNotIn(3, source)
+
+        self.assertEqual(cache, copy.copy(cache))
+
+    def test_copy_maxsize(self):
+        import copy
+        import sys
+
+        # test empty cache, single element, large cache (recursion limit)
+        for n in [0, 1, sys.getrecursionlimit() * 2]:
+            source = self.Cache(maxsize=n)
+            source.update((i, i) for i in range(n))
+            cache = copy.copy(source)
+            self.assertEqual(n, len(cache))
+            self.assertEqual(source, cache)
+
+    def test_deepcopy(self):
+        import copy
+
+        source = self.Cache(maxsize=2)
+        source.update({1: 1, 2: 2})
+
+        cache = copy.deepcopy(source)
+        self.assertIsNot(source, cache)
+        self.assertEqual(source, cache)
+        self.assertEqual(source.maxsize, cache.maxsize)
+        self.assertEqual(source.currsize, cache.currsize)
+
+        self.assertEqual(2, len(cache))
+        self.assertEqual(1, cache[1])
+        self.assertEqual(2, cache[2])
+
+        cache[3] = 3
+        self.assertEqual(2, len(cache))
+        self.assertEqual(2, cache.currsize)
+        self.assertEqual(3, cache[3])
+        self.assertTrue(1 in cache or 2 in cache)
+
+        self.assertEqual(2, len(source))
+        self.assertEqual(2, source.currsize)
+        self.assertIn(1, source)
+        self.assertIn(2, source)
+        self.assertNotIn(3, source)
+
+        self.assertEqual(cache, copy.deepcopy(cache))
+
+    def test_deepcopy_maxsize(self):
+        import copy
+        import sys
+
+        # test empty cache, single element, large cache (recursion limit)
+        for n in [0, 1, sys.getrecursionlimit() * 2]:
+            source = self.Cache(maxsize=n)
+            source.update((i, i) for i in range(n))
+            cache = copy.deepcopy(source)
+            self.assertEqual(n, len(cache))
+            self.assertEqual(source, cache)
diff --git a/tests/test_lfu.py b/tests/test_lfu.py
index 5ebad52..d21502e 100644
--- a/tests/test_lfu.py
+++ b/tests/test_lfu.py
@@ -137,3 +137,31 @@ class LFUCacheTest(unittest.TestCase, CacheTestMixin):
         self.assertIn(3, cache)
         self.assertIn(5, cache)
         self.assertNotIn(4, cache)
+
+    def test_lfu_copy_use_counts(self):
+        """Regression test for recursion errors from copying and
+        pickling LFUCache with many use counts."""
+        import copy
+        import pickle
+        import sys
+
+        n = sys.getrecursionlimit()
+        source = LFUCache[int, int](maxsize=n + 1)
+        for key in range(n):
+            source[key] = key
+            for _ in range(key):
+                source[key]  # key ends up with use count key + 1
+        source[n] = n  # tied with key 0 at use count 1
+
+        for cache in (
+            copy.copy(source),
+            copy.deepcopy(source),
+            pickle.loads(pickle.dumps(source)),
+        ):
+            # compare keys only, since items() would count as a use
+            self.assertEqual(list(source), list(cache))
+            # the copy evicts by use count, then by age
+            order = [cache.popitem()[0] for _ in range(len(cache))]
+            self.assertEqual([0, n, *range(1, n)], order)
+
+        self.assertEqual(n + 1, len(source))
EOF_114329324912
: '>>>>> Start Test Output'
pytest -rA --color=no -p no:cacheprovider -o addopts= --timeout=120 tests/test_lfu.py
: '>>>>> End Test Output'
git checkout 1cb29c6d11e8f73c9886ca2d7cb4c1b6757a0e4b tests/__init__.py tests/test_lfu.py
