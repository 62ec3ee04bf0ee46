package routing

import "github.com/servalnet/serval/internal/api"

func ptrTo[T any](v T) *T { return &v }

func asn(n uint32) *api.ASNumber { a := api.ASNumberFrom(n); return &a }
