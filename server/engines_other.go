package server

import (
	"github.com/tickfan/tickfan/internal/engine/evio"
	"github.com/tickfan/tickfan/internal/engine/std"
	"github.com/tickfan/tickfan/server/reactor"
)

// otherEngines are the engines besides gnet, by name: they implement the
// reactor contract outside this package, to be measured against.
var otherEngines = map[string]func(reactor.Handler, reactor.Options) reactor.Engine{
	EngineEvio: evio.New,
	EngineStd:  std.New,
}
