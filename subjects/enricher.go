package subjects

// enricherAssets declares the Enricher's streams, consumers and buckets
// (seed 004).
func enricherAssets(o Options) assetSet {
	return assetSet{}
}
