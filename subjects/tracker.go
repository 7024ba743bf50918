package subjects

// trackerAssets declares the Tracker's streams, consumers and buckets
// (seed 000).
func trackerAssets(o Options) assetSet {
	return assetSet{}
}
