#!/usr/bin/env ruby
# frozen_string_literal: true

# Renders every ERB template of every job of a BOSH release the way the BOSH director would, so the
# templates can be checked without a director: plain Ruby + ERB, no gems.
#
#   ruby scripts/render-bosh-templates.rb [--release DIR] [--sample FILE] [--set JOB:a.b=JSON ...]
#                                         [--out DIR] [--job NAME ...]
#
# - --release: the release directory (default: bosh/ next to this script's parent).
# - --sample:  a YAML file with the instance spec, the properties of each job (merged over the spec
#              defaults, like manifest properties) and optional link overrides (default:
#              <release>/test/sample-properties.yml).
# - --set:     override one property of one job, the value parsed as JSON (else taken as a string),
#              e.g. --set 'cni:mtu=1450' --set 'cni:deny_networks.always=["10.0.0.0/8"]'.
# - --out:     where rendered files go: <out>/<job>/<destination path> (default: a temporary dir).
# - --job:     render only these jobs (repeatable).
# - --only:    render only templates with this destination path, e.g. bin/drain (repeatable).
#
# The template context emulates BOSH's: p(name[, default]) (also a list of names, first one set
# wins), if_p(*names) { } .else { }, spec.{address,id,index,ip,name,deployment,az,bootstrap,
# networks,job.name}, link(name) / if_link(name) { } .else { } with .p, .if_p, .address,
# .instances. Links are resolved like BOSH's implicit linking: a consumed link is provided by the
# job in the sample that provides a link of the same type (its properties as the provider's merged
# properties restricted to the names it lists); the sample may instead give a link explicitly or set
# it to null (an unresolved optional link, or an error for a required one).
#
# After rendering, every output is checked by its kind: *.json / *.conflist parse as JSON,
# *.yml / *.yaml parse as YAML (safe_load), shell scripts (a #! line naming sh or bash) pass
# `bash -n`, and *.crt / *.key files, when non-empty, hold a PEM block. Properties given in the
# sample (or the manifest) that the job spec does not declare are errors. A JSON report goes to stdout:
#   {"out": DIR, "files": [{"job", "template", "dest", "path", "kind", "parsed"?}], "errors": [...]}
# where "parsed" is the parsed content of JSON and YAML outputs. The exit status is 1 when any
# template failed to render or check, 2 on bad usage.

require 'erb'
require 'json'
require 'yaml'
require 'ostruct'
require 'optparse'
require 'tmpdir'
require 'fileutils'
require 'open3'

module BoshRender
  class UnknownProperty < StandardError
    def initialize(names)
      super("Can't find property '#{Array(names).join("', '")}'")
    end
  end

  # Deep lookup of a dotted name in a nested hash; returns [found, value].
  def self.lookup(hash, name)
    cur = hash
    name.to_s.split('.').each do |part|
      return [false, nil] unless cur.is_a?(Hash) && cur.key?(part)

      cur = cur[part]
    end
    [true, cur]
  end

  def self.assign(hash, name, value)
    parts = name.to_s.split('.')
    cur = hash
    parts[0..-2].each do |part|
      cur[part] = {} unless cur[part].is_a?(Hash)
      cur = cur[part]
    end
    cur[parts[-1]] = value
  end

  def self.deep_merge(a, b)
    return b unless a.is_a?(Hash) && b.is_a?(Hash)

    out = a.dup
    b.each { |k, v| out[k] = out.key?(k) ? deep_merge(out[k], v) : v }
    out
  end

  def self.deep_copy(value)
    Marshal.load(Marshal.dump(value))
  end

  # Properties as BOSH computes them: spec defaults (dotted names), then the manifest properties.
  # A spec property without a default and not set in the manifest stays absent, so p() raises.
  def self.merged_properties(spec, manifest_props)
    props = {}
    (spec['properties'] || {}).each do |name, definition|
      next unless definition.is_a?(Hash) && definition.key?('default')

      assign(props, name, deep_copy(definition['default']))
    end
    deep_merge(props, deep_copy(manifest_props || {}))
  end

  # Result of if_p / if_link: `.else { }` runs only when the condition was not met.
  class ActiveElseBlock
    def initialize(ran)
      @ran = ran
    end

    def else
      yield unless @ran
      nil
    end
  end

  module PropertyAccess
    def p(*args)
      names = Array(args[0])
      names.each do |name|
        found, value = BoshRender.lookup(@properties, name)
        return value if found && !value.nil?
      end
      return args[1] if args.length > 1

      raise UnknownProperty, names
    end

    def if_p(*names)
      values = names.map do |name|
        found, value = BoshRender.lookup(@properties, name)
        return ActiveElseBlock.new(false) unless found && !value.nil?

        value
      end
      yield(*values)
      ActiveElseBlock.new(true)
    end
  end

  class LinkInstance
    attr_reader :name, :id, :index, :az, :address, :bootstrap

    def initialize(h)
      @name = h['name']
      @id = h['id']
      @index = h['index']
      @az = h['az']
      @address = h['address']
      @bootstrap = h['bootstrap'] || false
    end
  end

  class Link
    include PropertyAccess
    attr_reader :instances, :address

    def initialize(h)
      @properties = h['properties'] || {}
      @instances = (h['instances'] || []).map { |i| LinkInstance.new(i) }
      @address = h['address'] || @instances.first&.address
    end
  end

  def self.to_ostruct(value)
    case value
    when Hash then OpenStruct.new(value.transform_values { |v| to_ostruct(v) })
    when Array then value.map { |v| to_ostruct(v) }
    else value
    end
  end

  # The object ERB is evaluated against: one per (job, template).
  class Context
    include PropertyAccess
    attr_reader :spec, :name, :index

    def initialize(job_name, properties, instance, links)
      @properties = properties
      @links = links
      @name = job_name
      @index = instance['index']
      raw = instance.merge('job' => { 'name' => job_name }, 'properties' => properties)
      @spec = BoshRender.to_ostruct(raw)
      # spec.networks must answer to_h with OpenStruct values (templates call .to_h.values.map(&:ip)).
      @spec.networks = OpenStruct.new((instance['networks'] || {}).transform_values { |n| OpenStruct.new(n) })
    end

    def link(name)
      l = @links[name]
      raise "Can't find link '#{name}'" if l.nil?

      l
    end

    def if_link(name)
      l = @links[name]
      return ActiveElseBlock.new(false) if l.nil?

      yield l
      ActiveElseBlock.new(true)
    end

    def get_binding
      binding
    end
  end

  def self.load_job_spec(release, job)
    YAML.safe_load(File.read(File.join(release, 'jobs', job, 'spec')), aliases: false) || {}
  end

  SAMPLE_PEM = {
    'ca' => "-----BEGIN CERTIFICATE-----\nc2FtcGxlIENB\n-----END CERTIFICATE-----\n",
    'certificate' => "-----BEGIN CERTIFICATE-----\nc2FtcGxlIGNlcnQ=\n-----END CERTIFICATE-----\n",
    'private_key' => "-----BEGIN RSA PRIVATE KEY-----\nc2FtcGxlIGtleQ==\n-----END RSA PRIVATE KEY-----\n",
    'public_key' => "-----BEGIN PUBLIC KEY-----\nc2FtcGxlIHB1Yg==\n-----END PUBLIC KEY-----\n"
  }.freeze

  # ---- go-patch (the subset cf-deployment's ops files use) -------------------------------------
  module GoPatch
    Token = Struct.new(:kind, :key, :value, :optional, :modifier)

    def self.parse(path)
      raise ArgumentError, "ops path must start with /: #{path}" unless path.start_with?('/')

      optional = false
      path.split('/', -1)[1..].map do |raw|
        part = raw.dup
        modifier = nil
        if (m = /:(before|after|prev|next)\z/.match(part))
          modifier = m[1]
          part = part[0...m.begin(0)]
        end
        if part.end_with?('?')
          optional = true
          part = part[0..-2]
        end
        if part == '-'
          Token.new(:append, nil, nil, optional, modifier)
        elsif part =~ /\A\d+\z/
          Token.new(:index, nil, part.to_i, optional, modifier)
        elsif (m = /\A([^=]+)=(.*)\z/.match(part))
          Token.new(:match, m[1], m[2], optional, modifier)
        else
          Token.new(:key, part, nil, optional, modifier)
        end
      end
    end

    def self.apply(doc, ops)
      ops.each_with_index do |op, i|
        tokens = parse(op['path'])
        case op['type']
        when 'replace' then doc = replace(doc, tokens, op['value'], op['path'])
        when 'remove' then doc = remove(doc, tokens, op['path'])
        else raise ArgumentError, "op #{i}: unsupported type #{op['type'].inspect}"
        end
      end
      doc
    end

    def self.replace(doc, tokens, value, path)
      return BoshRender.deep_copy(value) if tokens.empty?

      parent = doc
      tokens.each_with_index do |t, i|
        last = i == tokens.length - 1
        case t.kind
        when :key
          raise "#{path}: #{t.key} is not in a map" unless parent.is_a?(Hash)

          if last
            parent[t.key] = BoshRender.deep_copy(value)
          else
            unless parent.key?(t.key)
              raise "#{path}: key #{t.key} not found" unless t.optional

              parent[t.key] = tokens[i + 1].kind == :key ? {} : []
            end
            parent = parent[t.key]
          end
        when :index
          raise "#{path}: index into a non-list" unless parent.is_a?(Array) && t.value < parent.length

          if last then parent[t.value] = BoshRender.deep_copy(value) else parent = parent[t.value] end
        when :append
          raise "#{path}: - on a non-list" unless parent.is_a?(Array)
          raise "#{path}: - must be last" unless last

          parent << BoshRender.deep_copy(value)
        when :match
          raise "#{path}: #{t.key}=#{t.value} on a non-list" unless parent.is_a?(Array)

          idx = parent.index { |e| e.is_a?(Hash) && e[t.key].to_s == t.value }
          if idx.nil?
            raise "#{path}: no element with #{t.key}=#{t.value}" unless t.optional

            if last
              parent << BoshRender.deep_copy(value)
            else
              parent << { t.key => t.value }
              parent = parent[-1]
            end
            next
          end
          if last
            case t.modifier
            when 'before' then parent.insert(idx, BoshRender.deep_copy(value))
            when 'after' then parent.insert(idx + 1, BoshRender.deep_copy(value))
            else parent[idx] = BoshRender.deep_copy(value)
            end
          else
            parent = parent[idx]
          end
        end
      end
      doc
    end

    def self.remove(doc, tokens, path)
      parent = doc
      tokens.each_with_index do |t, i|
        last = i == tokens.length - 1
        case t.kind
        when :key
          found = parent.is_a?(Hash) && parent.key?(t.key)
          return doc if !found && t.optional
          raise "#{path}: key #{t.key} not found" unless found

          if last then parent.delete(t.key) else parent = parent[t.key] end
        when :index
          raise "#{path}: index out of range" unless parent.is_a?(Array) && t.value < parent.length

          if last then parent.delete_at(t.value) else parent = parent[t.value] end
        when :match
          idx = parent.is_a?(Array) ? parent.index { |e| e.is_a?(Hash) && e[t.key].to_s == t.value } : nil
          return doc if idx.nil? && t.optional
          raise "#{path}: no element with #{t.key}=#{t.value}" if idx.nil?

          if last then parent.delete_at(idx) else parent = parent[idx] end
        else
          raise "#{path}: cannot remove #{t.kind}"
        end
      end
      doc
    end
  end

  # ((name)) / ((name.sub)) interpolation, like the director's config-server lookup. Certificate
  # variables give sample PEM blocks, passwords a sample string; --var values win. Unknown names are
  # collected as errors.
  def self.interpolate(value, variables, given, missing)
    case value
    when Hash then value.transform_values { |v| interpolate(v, variables, given, missing) }
    when Array then value.map { |v| interpolate(v, variables, given, missing) }
    when String
      whole = /\A\(\(([^()]+)\)\)\z/.match(value)
      return resolve_var(whole[1], variables, given, missing) if whole

      value.gsub(/\(\(([^()]+)\)\)/) { resolve_var(Regexp.last_match(1), variables, given, missing).to_s }
    else value
    end
  end

  def self.resolve_var(ref, variables, given, missing)
    name, sub = ref.strip.delete_prefix('!').split('.', 2)
    return given[ref.strip] if given.key?(ref.strip)
    return given[name] if given.key?(name) && sub.nil?

    var = variables.find { |v| v['name'] == name }
    if var.nil?
      missing << ref.strip
      return "((#{ref}))"
    end
    case var['type']
    when 'certificate', 'rsa', 'ssh'
      return SAMPLE_PEM.fetch(sub || 'certificate') { "sample-#{name}-#{sub}" }
    when 'password' then return "sample-#{name}-0123456789abcdef"
    end
    "sample-#{name}#{sub ? "-#{sub}" : ''}"
  end

  # Dotted leaf paths of a properties hash (arrays and scalars are leaves).
  def self.leaf_paths(hash, prefix = nil)
    hash.flat_map do |k, v|
      path = prefix ? "#{prefix}.#{k}" : k.to_s
      v.is_a?(Hash) && !v.empty? ? leaf_paths(v, path) : [path]
    end
  end

  def self.undeclared_properties(spec, props)
    declared = (spec['properties'] || {}).keys
    leaf_paths(props || {}).reject do |path|
      declared.any? { |d| d == path || path.start_with?("#{d}.") || d.start_with?("#{path}.") }
    end
  end

  # ---- rendering --------------------------------------------------------------------------------
  def self.check_output(path, text)
    base = File.basename(path)
    if base.end_with?('.json', '.conflist')
      return ['empty', nil] if text.strip.empty?

      return ['json', JSON.parse(text)]
    elsif base.end_with?('.yml', '.yaml')
      return ['yaml', YAML.safe_load(text, aliases: false)]
    elsif text.start_with?('#!') && text.lines.first =~ /\b(ba)?sh\b/
      _out, err, status = Open3.capture3('bash', '-n', path)
      raise "bash -n #{path}: #{err}" unless status.success?

      return ['shell', nil]
    elsif base.end_with?('.crt', '.key', '.pem')
      if !text.strip.empty? && text !~ /-----BEGIN [A-Z0-9 ]+-----/
        raise "#{path}: not a PEM block"
      end

      return ['pem', nil]
    end
    ['text', nil]
  end

  def self.render_job(release, job, spec, properties, instance, links, out_dir, files, errors, extra = {})
    templates = (spec['templates'] || {}).to_a
    templates << ['../monit', 'monit'] if File.file?(File.join(release, 'jobs', job, 'monit'))
    templates.select! { |_t, dest| @only.include?(dest) } unless @only.nil? || @only.empty?
    templates.each do |template, dest|
      src = File.join(release, 'jobs', job, 'templates', template)
      target = File.join(out_dir, dest)
      entry = extra.merge('job' => job, 'template' => template, 'dest' => dest, 'path' => target)
      begin
        ctx = Context.new(job, deep_copy(properties), instance, links)
        erb = ERB.new(File.read(src), trim_mode: '-')
        erb.filename = src
        text = erb.result(ctx.get_binding)
        FileUtils.mkdir_p(File.dirname(target))
        File.write(target, text)
        kind, parsed = check_output(target, text)
        entry['kind'] = kind
        entry['parsed'] = parsed unless parsed.nil?
        files << entry
      rescue StandardError, SyntaxError, ScriptError => e
        errors << entry.merge('error' => "#{e.class}: #{e.message}")
      end
    end
  end

  def self.link_from_provider(provider_spec, link_type, provider_props, address, instance)
    provided = (provider_spec['provides'] || []).find { |pr| pr['type'] == link_type }
    props = {}
    (provided['properties'] || []).each do |pname|
      found, value = lookup(provider_props, pname)
      assign(props, pname, value) if found
    end
    Link.new('properties' => props, 'address' => address,
             'instances' => [instance.slice('name', 'id', 'index', 'az', 'address').merge('bootstrap' => true)])
  end

  # Sample mode: every job of the release on one instance, properties from the sample file.
  def self.resolve_sample_links(job, spec, sample, specs, merged)
    links = {}
    sample_links = ((sample['jobs'] || {})[job] || {})['links'] || {}
    (spec['consumes'] || []).each do |consumed|
      lname = consumed['name']
      if sample_links.key?(lname)
        given = sample_links[lname]
        if given.nil?
          raise "required link '#{lname}' of job #{job} set to null in the sample" unless consumed['optional']

          next
        end
        links[lname] = Link.new(given)
        next
      end
      provider = specs.keys.find do |other|
        (specs[other]['provides'] || []).any? { |pr| pr['type'] == consumed['type'] }
      end
      if provider.nil?
        raise "no provider of link '#{lname}' (type #{consumed['type']}) for job #{job}" unless consumed['optional']

        next
      end
      inst = sample['instance']
      links[lname] = link_from_provider(specs[provider], consumed['type'], merged[provider],
                                        "q-s0.#{provider}.default.#{inst['deployment'] || 'cf'}.bosh", inst)
    end
    links
  end

  def self.render_sample(release, specs, sample, wanted, out, files, errors)
    instance = sample['instance']
    merged = specs.keys.to_h do |j|
      props = (sample['jobs'][j] || {})['properties']
      undeclared_properties(specs[j], props).each do |path|
        errors << { 'job' => j, 'error' => "property #{path} is not in the job spec" }
      end
      [j, merged_properties(specs[j], props)]
    end
    wanted.each do |job|
      spec = specs[job]
      errors << { 'job' => job, 'error' => "spec name #{spec['name'].inspect} differs from directory" } unless spec['name'] == job
      begin
        links = resolve_sample_links(job, spec, sample, specs, merged)
      rescue StandardError => e
        errors << { 'job' => job, 'error' => e.message }
        next
      end
      render_job(release, job, spec, merged[job], instance, links, File.join(out, job), files, errors)
    end
  end

  def self.instance_for(group, manifest, index)
    net = (group['networks'] || [{ 'name' => 'default' }]).first['name']
    ip = "10.0.#{16 + index}.5"
    id = format('6f3c1c1e-0b1c-4a8e-9a55-%012d', index)
    dep = manifest['name'] || 'cf'
    {
      'name' => group['name'], 'id' => id, 'index' => 0, 'az' => (group['azs'] || ['z1']).first,
      'deployment' => dep, 'bootstrap' => true, 'ip' => ip,
      'address' => "#{id}.#{group['name']}.#{net}.#{dep}.bosh",
      'networks' => { net => { 'ip' => ip, 'default' => %w[dns gateway] } }
    }
  end

  # Deployment mode: apply ops files to a manifest, then render every job of this release where the
  # manifest places it, with the manifest's properties (variables interpolated) and links resolved
  # between the manifest's jobs of this release (explicit `from:`/`as:` names, else by type).
  def self.render_deployment(release, release_name, specs, manifest, given_vars, out, files, errors)
    variables = manifest['variables'] || []
    groups = manifest['instance_groups'] || []
    ours = []
    groups.each_with_index do |g, gi|
      (g['jobs'] || []).each do |j|
        next unless j['release'] == release_name && specs.key?(j['name'])

        ours << [g, gi, j]
      end
    end
    missing = []
    merged = {}
    ours.each do |g, _gi, j|
      props = interpolate(j['properties'] || {}, variables, given_vars, missing)
      undeclared_properties(specs[j['name']], props).each do |path|
        errors << { 'instance_group' => g['name'], 'job' => j['name'], 'error' => "property #{path} is not in the job spec" }
      end
      merged[[g['name'], j['name']]] = merged_properties(specs[j['name']], props)
    end
    missing.uniq.each { |m| errors << { 'error' => "variable ((#{m})) is not defined" } }

    ours.each do |g, gi, j|
      spec = specs[j['name']]
      instance = instance_for(g, manifest, gi)
      links = {}
      (spec['consumes'] || []).each do |consumed|
        lname = consumed['name']
        setting = (j['consumes'] || {})[lname]
        next if setting == 'nil' || (setting.nil? && (j['consumes'] || {}).key?(lname))

        from = setting.is_a?(Hash) ? setting['from'] : nil
        candidates = ours.select do |pg, _pgi, pj|
          (specs[pj['name']]['provides'] || []).any? do |pr|
            next false unless pr['type'] == consumed['type']

            as = ((pj['provides'] || {})[pr['name']] || {})['as'] if (pj['provides'] || {})[pr['name']].is_a?(Hash)
            from.nil? || from == (as || pr['name'])
          end
        end
        if candidates.length > 1
          errors << { 'instance_group' => g['name'], 'job' => j['name'],
                      'error' => "link #{lname}: #{candidates.length} providers of type #{consumed['type']}; name one with from:" }
          next
        end
        if candidates.empty?
          unless consumed['optional']
            errors << { 'instance_group' => g['name'], 'job' => j['name'],
                        'error' => "link #{lname}: no provider#{from ? " named #{from}" : ''} of type #{consumed['type']}" }
          end
          next
        end
        pg, pgi, pj = candidates.first
        pinst = instance_for(pg, manifest, pgi)
        net = pinst['networks'].keys.first
        links[lname] = link_from_provider(specs[pj['name']], consumed['type'], merged[[pg['name'], pj['name']]],
                                          "q-s0.#{pg['name']}.#{net}.#{pinst['deployment']}.bosh", pinst)
      end
      render_job(release, j['name'], spec, merged[[g['name'], j['name']]], instance, links,
                 File.join(out, g['name'], j['name']), files, errors, 'instance_group' => g['name'])
    end
  end

  def self.run(argv)
    here = File.expand_path('..', __dir__)
    opts = { release: File.join(here, 'bosh'), sample: nil, out: nil, jobs: [], sets: [],
             deployment: nil, ops: [], vars: {} }
    OptionParser.new do |o|
      o.banner = 'usage: render-bosh-templates.rb [options]'
      o.on('--release DIR') { |v| opts[:release] = v }
      o.on('--sample FILE') { |v| opts[:sample] = v }
      o.on('--out DIR') { |v| opts[:out] = v }
      o.on('--job NAME') { |v| opts[:jobs] << v }
      o.on('--only DEST') { |v| (opts[:only] ||= []) << v }
      o.on('--set JOB:NAME=VALUE') { |v| opts[:sets] << v }
      o.on('--deployment FILE') { |v| opts[:deployment] = v }
      o.on('--ops FILE') { |v| opts[:ops] << v }
      o.on('--var NAME=VALUE') do |v|
        k, val = v.split('=', 2)
        raise ArgumentError, "bad --var #{v.inspect}" if val.nil?

        opts[:vars][k] = val
      end
    end.parse!(argv)
    release = File.expand_path(opts[:release])
    @only = opts[:only]
    out = opts[:out] || Dir.mktmpdir('bosh-render-')
    release_name = (YAML.safe_load(File.read(File.join(release, 'config', 'final.yml'))) || {})['name']
    all_jobs = Dir.children(File.join(release, 'jobs')).select do |j|
      File.file?(File.join(release, 'jobs', j, 'spec'))
    end.sort
    specs = all_jobs.to_h { |j| [j, load_job_spec(release, j)] }
    files = []
    errors = []

    if opts[:deployment]
      manifest = YAML.safe_load(File.read(opts[:deployment]), aliases: true) || {}
      opts[:ops].each do |ops_file|
        ops = YAML.safe_load(File.read(ops_file), aliases: true) || []
        begin
          manifest = GoPatch.apply(manifest, ops)
        rescue StandardError => e
          errors << { 'error' => "#{File.basename(ops_file)}: #{e.message}" }
        end
      end
      FileUtils.mkdir_p(out)
      File.write(File.join(out, 'manifest.json'), JSON.pretty_generate(manifest))
      if errors.empty?
        render_deployment(release, release_name, specs, manifest, opts[:vars], out, files, errors)
      end
      puts JSON.pretty_generate('out' => out, 'manifest' => File.join(out, 'manifest.json'),
                                'files' => files, 'errors' => errors)
      return errors.empty? ? 0 : 1
    end

    sample_path = opts[:sample] || File.join(release, 'test', 'sample-properties.yml')
    sample = YAML.safe_load(File.read(sample_path), aliases: false) || {}
    sample['jobs'] ||= {}
    opts[:sets].each do |s|
      m = /\A([^:]+):([^=]+)=(.*)\z/m.match(s)
      raise ArgumentError, "bad --set #{s.inspect} (want JOB:a.b=VALUE)" unless m

      value = begin
        JSON.parse(m[3])
      rescue JSON::ParserError
        m[3]
      end
      sample['jobs'][m[1]] ||= {}
      sample['jobs'][m[1]]['properties'] ||= {}
      assign(sample['jobs'][m[1]]['properties'], m[2], value)
    end
    sample['instance'] = {
      'address' => '10.0.16.5', 'ip' => '10.0.16.5', 'id' => '6f3c1c1e-0b1c-4a8e-9a55-3d1f0c2b7a10',
      'index' => 0, 'name' => 'diego-cell', 'deployment' => 'cf', 'az' => 'z1', 'bootstrap' => true,
      'networks' => { 'default' => { 'ip' => '10.0.16.5', 'default' => %w[dns gateway] } }
    }.merge(sample['instance'] || {})
    wanted = opts[:jobs].empty? ? all_jobs : opts[:jobs]
    unknown = wanted - all_jobs
    raise ArgumentError, "unknown job(s): #{unknown.join(', ')}" unless unknown.empty?

    render_sample(release, specs, sample, wanted, out, files, errors)
    puts JSON.pretty_generate('out' => out, 'files' => files, 'errors' => errors)
    errors.empty? ? 0 : 1
  end
end

if $PROGRAM_NAME == __FILE__
  begin
    exit BoshRender.run(ARGV)
  rescue ArgumentError, OptionParser::ParseError, Errno::ENOENT => e
    warn "render-bosh-templates: #{e.message}"
    exit 2
  end
end
