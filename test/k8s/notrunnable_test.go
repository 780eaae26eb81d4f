package k8s

// upstreamTests accounts for every Test function of the k8s.io/apiserver
// test files this package mirrors: where it runs here, or why it does not.
// TestEverySuiteFunctionIsWired fails when the pinned k8s.io/apiserver has
// a Test function in these files that is missing from this table.
//
// Three reasons keep an upstream case from running here:
//   - internal: it reads or writes unexported fields or calls unexported
//     functions of the apiserver's packages, so it only compiles inside them;
//   - empty: upstream's function has no body yet (a TODO);
//   - apiserver-only: it tests the apiserver's own code against a stub or
//     fake (no request reaches a server, or the server is replaced by a
//     fake), so running it against kinelite would test nothing of kinelite.
//     These are not RunTest* groups.
var upstreamTests = map[string]map[string]string{
	"pkg/storage/etcd3/store_test.go": {
		"TestCreate":                                  "TestStore/Create",
		"TestCreateWithTTL":                           "TestStore/CreateWithTTL",
		"TestCreateWithKeyExist":                      "TestStore/CreateWithKeyExist",
		"TestGet":                                     "TestStore/Get",
		"TestUnconditionalDelete":                     "TestStore/UnconditionalDelete",
		"TestConditionalDelete":                       "TestStore/ConditionalDelete",
		"TestDeleteWithSuggestion":                    "TestStore/DeleteWithSuggestion",
		"TestDeleteWithSuggestionAndConflict":         "TestStore/DeleteWithSuggestionAndConflict",
		"TestDeleteWithSuggestionOfDeletedObject":     "TestStore/DeleteWithSuggestionOfDeletedObject",
		"TestValidateDeletionWithSuggestion":          "TestStore/ValidateDeletionWithSuggestion",
		"TestValidateDeletionWithOnlySuggestionValid": "TestStore/ValidateDeletionWithOnlySuggestionValid",
		"TestDeleteWithConflict":                      "TestStore/DeleteWithConflict",
		"TestDeleteWithConflictAndMissingExpectedTransformOrDecodeError":     "TestStore/UnsafeDeletion/DeleteWithConflictAndMissingExpectedTransformOrDecodeError",
		"TestDeleteWithConflictAndExpectedTransformError":                    "TestStore/UnsafeDeletion/DeleteWithConflictAndExpectedTransformError",
		"TestDeleteWithConflictAndExpectedDecodeError":                       "TestStore/UnsafeDeletion/DeleteWithConflictAndExpectedDecodeError",
		"TestDeleteWithSuggestionAndMissingExpectedTransformOrDecodeFailure": "TestStore/UnsafeDeletion/DeleteWithSuggestionAndMissingExpectedTransformOrDecodeFailure",
		"TestPreconditionalDeleteWithSuggestion":                             "TestStore/PreconditionalDeleteWithSuggestion",
		"TestPreconditionalDeleteWithSuggestionPass":                         "TestStore/PreconditionalDeleteWithSuggestionPass",
		"TestListPaging":                                "TestStore/ListPaging",
		"TestGetListNonRecursive":                       "TestStore/GetListNonRecursive",
		"TestGetListRecursivePrefix":                    "TestStore/GetListRecursivePrefix",
		"TestKeySchema":                                 "TestStore/KeySchema",
		"TestGetListWithErrorAggregation":               "TestStore/UnsafeDeletion/GetListWithErrorAggregation",
		"TestGetListWithoutErrorAggregation":            "TestStore/GetListWithoutErrorAggregation",
		"TestGuaranteedUpdate":                          "TestStore/GuaranteedUpdate",
		"TestGuaranteedUpdateWithTTL":                   "TestStore/GuaranteedUpdateWithTTL",
		"TestGuaranteedUpdateChecksStoredData":          "TestStore/GuaranteedUpdateChecksStoredData",
		"TestGuaranteedUpdateWithConflict":              "TestStore/GuaranteedUpdateWithConflict",
		"TestGuaranteedUpdateWithSuggestionAndConflict": "TestStore/GuaranteedUpdateWithSuggestionAndConflict",
		"TestTransformationFailure":                     "TestStore/TransformationFailure",
		"TestList":                                      "TestStore/RangeStream=*/List",
		"TestConsistentList":                            "TestStore/RangeStream=*/ConsistentList",
		"TestCompactRevision":                           "TestStore/CompactRevision",
		"TestListContinuation":                          "TestStore/ListContinuation",
		"TestListPaginationRareObject":                  "TestStore/ListPaginationRareObject",
		"TestListContinuationWithFilter":                "TestStore/ListContinuationWithFilter",
		"TestNamespaceScopedList":                       "TestStore/NamespaceScopedList",
		"TestListInconsistentContinuation":              "TestStore/ListInconsistentContinuation",
		"TestListResourceVersionMatch":                  "TestStore/ListResourceVersionMatch",
		"TestStats":                                     "TestStore/Stats/*",
		"TestGetListStreamMultiChunk":                   "TestRangeStreamLists (rewritten on the exported API)",
		"TestGetCurrentResourceVersion":                 "TestCurrentResourceVersion (rewritten on the exported API)",

		"TestGetListStreamFallsBackToPaginated": "not run, apiserver-only: swaps the store's KV for a stub whose RangeStream answers Unimplemented, to test the apiserver's fallback; kinelite implements RangeStream",
		"TestListMetrics":                       "not run, apiserver-only: compares the apiserver's process-wide legacyregistry list metrics, the apiserver's instrumentation",
		"TestPrefix":                            "not run, internal: reads the store's unexported pathPrefix",
		"Test_growSlice":                        "not run, internal: calls the unexported growSlice",
		"TestLeaseMaxObjectCount":               "not run, internal: reads the unexported leaseManager's attached-object count",
		"TestPrepareKey":                        "not run, internal: calls the unexported prepareKey",
		"TestInvalidKeys":                       "not run, apiserver-only: the store rejects the key before any request reaches the server",
		"TestPrefixGetKeys":                     "not run, internal: calls the store's unexported getKeys",
		"TestPrefixStats":                       "TestStatsUnderPrefix (rewritten on the exported API, with a key lister of our own for the store's unexported getKeys)",
	},
	"pkg/storage/etcd3/watcher_test.go": {
		"TestWatch": "TestWatch",

		"TestWatchErrorIncorrectConfiguration":         "not run, internal: calls the store's unexported watcher.Watch on a store built without newFunc",
		"TestTooLargeResourceVersionErrorForWatchList": "not run, internal: calls the store's unexported watcher.Watch",
		"TestWatchChanSync":                            "not run, internal: drives the unexported watchChan's sync directly",
		"TestWatchChanSyncStreamMatchesPaginated":      "not run, internal: drives the unexported watchChan's two sync paths directly",
		"TestWatchChanSyncStreamFallsBackToPaginated":  "not run, internal and apiserver-only: the unexported watchChan over a stub KV without RangeStream",
		"TestWatchChanSyncStreamCompactionError":       "not run, internal: drives the unexported watchChan's sync directly",
		"TestWatchChanSyncStreamMetrics":               "not run, internal: the unexported watchChan and the process-wide metrics registry",
		"TestWatchWithShardSelector":                   "not run, apiserver-only: the ShardedListAndWatch filter the apiserver applies to events; the watch under it is RunTestWatch's",
	},
	"pkg/storage/etcd3/linearized_read_test.go": {
		"TestLinearizedReadRevisionInvariant": "TestLinearizedReadsKeepRevision (rewritten on the exported API)",
	},
	"pkg/storage/etcd3/compact_test.go": {
		"TestCompact":             "TestCompactor (rewritten on the exported API)",
		"TestCompactConflict":     "TestCompactConflict (rewritten on the exported API)",
		"TestCompactIntervalZero": "not run, apiserver-only: checks that a compactor with interval 0 never waits on its clock; no request is made",
	},
	"pkg/storage/cacher/cacher_test.go": {
		"TestCreate":                                  "TestCacher/Create",
		"TestCreateWithTTL":                           "TestCacher/CreateWithTTL",
		"TestCreateWithKeyExist":                      "TestCacher/CreateWithKeyExist",
		"TestGet":                                     "TestCacher/Get",
		"TestUnconditionalDelete":                     "TestCacher/UnconditionalDelete",
		"TestConditionalDelete":                       "TestCacher/ConditionalDelete",
		"TestDeleteWithSuggestion":                    "TestCacher/DeleteWithSuggestion",
		"TestDeleteWithSuggestionAndConflict":         "TestCacher/DeleteWithSuggestionAndConflict",
		"TestDeleteWithSuggestionOfDeletedObject":     "TestCacher/DeleteWithSuggestionOfDeletedObject",
		"TestValidateDeletionWithSuggestion":          "TestCacher/ValidateDeletionWithSuggestion",
		"TestValidateDeletionWithOnlySuggestionValid": "TestCacher/ValidateDeletionWithOnlySuggestionValid",
		"TestDeleteWithConflict":                      "TestCacher/DeleteWithConflict",
		"TestDeleteWithConflictAndMissingExpectedTransformOrDecodeError":   "TestCacher/UnsafeDeletion/DeleteWithConflictAndMissingExpectedTransformOrDecodeError",
		"TestDeleteWithConflictAndExpectedTransformError":                  "TestCacher/UnsafeDeletion/DeleteWithConflictAndExpectedTransformError",
		"TestDeleteWithConflictAndExpectedDecodeError":                     "TestCacher/UnsafeDeletion/DeleteWithConflictAndExpectedDecodeError",
		"TestDeleteWithSuggestionAndMissingExpectedTransformOrDecodeError": "TestCacher/UnsafeDeletion/DeleteWithSuggestionAndMissingExpectedTransformOrDecodeError",
		"TestPreconditionalDeleteWithSuggestion":                           "TestCacher/PreconditionalDeleteWithSuggestion",
		"TestPreconditionalDeleteWithSuggestionPass":                       "TestCacher/PreconditionalDeleteWithSuggestionPass",
		"TestListPaging":                                "TestCacher/ListPaging",
		"TestLists":                                     "TestCacher/ListFromCacheSnapshot=*/{List,ConsistentList,GetListNonRecursive}",
		"TestCompactRevision":                           "TestCacher/ListFromCacheSnapshot=true/CompactRevision (waits for the cache's 15 s compactor poll, which upstream calls directly)",
		"TestMarkConsistent":                            "TestCacher/ListFromCacheSnapshot=true/MarkConsistent",
		"TestGetListRecursivePrefix":                    "TestCacher/GetListRecursivePrefix",
		"TestListContinuation":                          "TestCacher/ListContinuation",
		"TestListPaginationRareObject":                  "TestCacher/ListPaginationRareObject",
		"TestListContinuationWithFilter":                "TestCacher/ListContinuationWithFilter",
		"TestNamespaceScopedList":                       "TestCacher/NamespaceScopedList",
		"TestGuaranteedUpdateWithTTL":                   "TestCacher/GuaranteedUpdateWithTTL",
		"TestGuaranteedUpdateWithConflict":              "TestCacher/GuaranteedUpdateWithConflict",
		"TestGuaranteedUpdateWithSuggestionAndConflict": "TestCacher/GuaranteedUpdateWithSuggestionAndConflict",
		"TestStats":                                     "TestCacher/Stats/*",
		"TestKeySchema":                                 "TestCacher/KeySchema",
		"TestWatch": "TestCacher/{Watch,DeleteTriggerWatch,WatchFromNonZero,DelayedWatchDelivery,WatcherTimeout,WatchDeleteEventObjectHaveLatestRV," +
			"WatchInitializationSignal,ClusterScopedWatch,NamespaceScopedWatch,WatchDispatchBookmarkEvents,WatchBookmarksWithCorrectResourceVersion," +
			"SendInitialEventsBackwardCompatibility,WatchSemantics,WatchSemanticInitialEventsExtended,WatchListMatchSingle}; " +
			"not run: its WatchFromZero case, internal (its compaction helper rewrites the cache's unexported watchCache history and calls waitUntilFreshLocked; " +
			"TestWatch/WatchFromZero runs the group on the store); its WatchError and WatchContextCancel cases are empty upstream",

		"TestListInconsistentContinuation":     "not run, empty upstream (TODO #109831)",
		"TestListResourceVersionMatch":         "not run, empty upstream (TODO #109831)",
		"TestGuaranteedUpdate":                 "not run, empty upstream (TODO #109831)",
		"TestGuaranteedUpdateChecksStoredData": "not run, empty upstream (TODO #109831)",
		"TestTransformationFailure":            "not run, empty upstream (TODO #109831)",
	},
	// The cacher package's other test files (cacher_whitebox_test.go,
	// watch_cache_test.go, cache_watcher_test.go, ...) run the cache over an
	// in-memory fake storage or test its internals: they are not listed.
}
