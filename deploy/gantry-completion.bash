# Bash completion for gantry: commands, flags, flag values, and names of workloads,
# replicas and nodes asked from the control plane (the same --server or GANTRY_ADDR the
# command line uses). Load it with
#   source deploy/gantry-completion.bash
# or copy it to /etc/bash_completion.d/gantry.

_gantry_names() {
    # Names of one kind, one a line; nothing when the control plane cannot be reached.
    gantry "${_gantry_server[@]}" get "$1" -o name 2>/dev/null
}

_gantry() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=""
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
    local commands="apply get describe delete scale move drain cordon uncordon remove-node rotate-key top logs image events cluster dev version help"
    local cmd="" i word
    local -a args=()
    _gantry_server=()
    # Find the command word and the arguments typed so far, skipping flags and the
    # values of flags that take one.
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        case $word in
        --server)
            _gantry_server=(--server "${COMP_WORDS[i + 1]}")
            ((i++))
            ;;
        --server=*) _gantry_server=("$word") ;;
        -f | --filename | -o | --output | --timeout | --since | --workload | --to | --node | --cloud)
            [[ $cmd == logs || $cmd == events ]] && [[ $word == -f ]] || ((i++))
            ;;
        -*) ;;
        *)
            if [[ -z $cmd ]]; then cmd=$word; else args+=("$word"); fi
            ;;
        esac
    done

    case $prev in
    --server) return 0 ;;
    -o | --output)
        COMPREPLY=($(compgen -W "wide json yaml name" -- "$cur"))
        return 0
        ;;
    --workload)
        COMPREPLY=($(compgen -W "$(_gantry_names workloads)" -- "$cur"))
        return 0
        ;;
    --node)
        COMPREPLY=($(compgen -W "$(_gantry_names nodes)" -- "$cur"))
        return 0
        ;;
    --timeout | --since | --to | --cloud) return 0 ;;
    -f | --filename)
        if [[ $cmd == apply ]]; then
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -X '!*.@(yaml|yml|json)' -- "$cur") $(compgen -d -- "$cur"))
            [[ -z $cur ]] && COMPREPLY+=("-")
            return 0
        fi
        ;;
    esac

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--server --help --version" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return 0
    fi

    local flags="--server --help"
    case $cmd in
    apply) flags+=" -f --filename --wait --timeout" ;;
    get) flags+=" -o --output --workload --node" ;;
    image) flags+=" -o --output --node --cloud" ;;
    logs) flags+=" -f --follow" ;;
    events) flags+=" -f --follow --since --workload" ;;
    move) flags+=" --to --wait --timeout" ;;
    drain) flags+=" --wait --timeout" ;;
    top) flags+=" -o --output" ;;
    cluster) flags+=" -o --output --role --host -q --quiet --data-dir --id --raft-addr --keep-cluster-id" ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
        return 0
    fi

    local words=""
    case $cmd in
    get)
        if ((${#args[@]} == 0)); then
            words="workloads replicas nodes images"
        elif ((${#args[@]} == 1)); then
            case ${args[0]} in
            workload | workloads) words=$(_gantry_names workloads) ;;
            replica | replicas) words=$(_gantry_names replicas) ;;
            node | nodes) words=$(_gantry_names nodes) ;;
            esac
        fi
        ;;
    describe)
        if ((${#args[@]} == 0)); then
            words="workload"
        elif ((${#args[@]} == 1)); then
            words=$(_gantry_names workloads)
        fi
        ;;
    delete | scale | move | top)
        ((${#args[@]} == 0)) && words=$(_gantry_names workloads)
        ;;
    drain | cordon | uncordon | remove-node | rotate-key)
        ((${#args[@]} == 0)) && words=$(_gantry_names nodes)
        ;;
    logs)
        ((${#args[@]} == 0)) && words=$(_gantry_names replicas)
        ;;
    image)
        if ((${#args[@]} == 0)); then
            words="ls pull rm"
        elif ((${#args[@]} == 1)) && [[ ${args[0]} == rm ]]; then
            words=$(_gantry_names images)
        fi
        ;;
    cluster)
        if [[ $prev == --role ]]; then
            words="server node"
        elif ((${#args[@]} == 0)); then
            words="status members verify join-token remove transfer-leader snapshot"
        elif ((${#args[@]} == 1)) && [[ ${args[0]} == snapshot ]]; then
            words="save restore"
        fi
        ;;
    help)
        ((${#args[@]} == 0)) && words=${commands% help}
        ;;
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
    return 0
}

complete -F _gantry gantry
