"""nsnet's benchmark suite, side by side with the CNI reference plugins and Docker.

Run from the repository root as root: ``python3 -m bench [--quick | --full] [--json PATH]``
(see docs/PERFORMANCE.md). Everything happens inside throwaway network namespaces that the
suite makes and always removes, even after a failure or Ctrl-C.

Subjects are the systems measured; each gets its own "host" namespace (with an "outside"
namespace of documentation addresses beside it) for every stage:

    nsnet    nsnetd's API on its unix socket, and the nsnet CLI
    engine   nsnet's ``Engine`` called in-process by an agent inside the host namespace
    cni      the CNI reference plugins bridge + host-local + portmap, exec'd as a runtime does
    docker   Docker 20.10's dockerd, through its API (raw HTTP) and the docker CLI

Modules:

    cli        the command line and the run as a whole: stage by stage, subject by subject
    stages     what is measured, and the profiles (quick, full): operations, scale, ports, dns
    subject    the contract every subject follows (create_network, attach, create_container ...)
    cni        the CNI reference plugins, exec'd with a runtime's environment and stdin
    dockerapi  the Docker Engine API operations shared by dockerd and nsnetd
    docker     dockerd in a namespace, a busybox image, the docker CLI
    nsnet      nsnetd and the nsnet CLI; the engine in an agent
    world      namespaces, a temporary directory, agents and processes, all removed at close
    agent      a process inside a namespace that execs, calls the engine, probes TCP and DNS,
               and times it there
    traffic    TCP connect latency and iperf3 throughput
    processes  a daemon's processes and their resident memory
    stats      samples, medians, p90s
    report     the table, issue 6's targets and the JSON file
"""
