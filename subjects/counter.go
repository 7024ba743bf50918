package subjects

// counterAssets declares the Counter API's streams, consumers and buckets
// (seed 002).
func counterAssets(o Options) assetSet {
	return assetSet{}
}
