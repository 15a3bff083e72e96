--- The plugin's options: defaults, then `vim.g.switchyard` (a table, or a function that
--- returns one), then what `require('switchyard').setup{}` was given. Every source is
--- validated: an unknown key or a value of the wrong type is reported by name and ignored,
--- and the default stays in force for it. Messages name keys and types, never values that
--- could be secrets.
local M = {}

--- The defaults; see `:help switchyard-config`.
M.defaults = {
  -- The command that starts the language server.
  cmd = { 'switchyard', 'lsp' },
  -- Extra environment for the server (OPENAI_BASE_URL, SWITCHYARD_MODEL, ...).
  cmd_env = {},
  -- Files or folders that mark a workspace root, in order of preference; the first one
  -- found upwards from the buffer wins, else the current directory is the root.
  root_markers = { '.switchyard.toml', '.git' },
  -- Server settings: sent as initializationOptions and answered to
  -- workspace/configuration (section "switchyard"), in the shape of .switchyard.toml.
  settings = {},
  -- vim.notify when a long command (an analysis) begins and ends.
  notify_progress = true,
  -- Where `ask` streams the agent's answer: a scratch buffer or vim.notify.
  ask_output = 'buffer',
  -- How report and transcript buffers open.
  window = 'split',
  -- The chat (`:Switchyard chat`): `layout` split | vsplit | float, its size (lines for a
  -- split, columns for a vsplit, a share of the editor for a float), the prompt's height,
  -- and whether the default keys are mapped inside the chat's buffers.
  chat = { layout = 'split', size = 0.4, prompt_height = 3, mappings = true },
  -- Models offered by `:Switchyard model`: "name" or "provider:name" (openai, anthropic).
  models = {},
  -- Review of every change (`switchyard.review` on the server): "off" applies changes as
  -- they come, "changes" opens a diff of each one to accept or reject hunk by hunk.
  review = 'off',
  -- Called as on_attach(client, bufnr) when the client attaches to a buffer.
  on_attach = nil,
}

local function is_list_of_strings(v, allow_empty)
  if type(v) ~= 'table' or (not allow_empty and #v == 0) then
    return false
  end
  for k, item in pairs(v) do
    if type(k) ~= 'number' or type(item) ~= 'string' or item == '' then
      return false
    end
  end
  return true
end

local function is_string_map(v)
  if type(v) ~= 'table' then
    return false
  end
  for k, item in pairs(v) do
    if type(k) ~= 'string' or type(item) ~= 'string' then
      return false
    end
  end
  return true
end

local function one_of(...)
  local allowed = { ... }
  return function(v)
    return vim.tbl_contains(allowed, v)
  end,
    'one of "' .. table.concat(allowed, '", "') .. '"'
end

local enum_window, window_expect = one_of('split', 'vsplit', 'tab', 'current')
local enum_output, output_expect = one_of('buffer', 'notify')
local enum_review, review_expect = one_of('off', 'changes')

local chat_keys = {
  layout = function(v)
    return v == 'split' or v == 'vsplit' or v == 'float'
  end,
  size = function(v)
    return type(v) == 'number' and v > 0
  end,
  prompt_height = function(v)
    return type(v) == 'number' and v >= 1 and v == math.floor(v)
  end,
  mappings = function(v)
    return type(v) == 'boolean'
  end,
}

local function is_chat(v)
  if type(v) ~= 'table' then
    return false
  end
  for k, item in pairs(v) do
    if not chat_keys[k] or not chat_keys[k](item) then
      return false
    end
  end
  return true
end

local function is_model_list(v)
  if not is_list_of_strings(v, true) then
    return false
  end
  for _, item in ipairs(v) do
    local provider = item:match('^(%w+):.')
    if provider and provider ~= 'openai' and provider ~= 'anthropic' then
      return false
    end
  end
  return true
end

--- key -> { check, what it must be, whether the offending value may be shown }
local schema = {
  cmd = {
    function(v)
      return is_list_of_strings(v, false)
    end,
    'a non-empty list of strings',
  },
  cmd_env = { is_string_map, 'a table of string keys to string values' },
  root_markers = {
    function(v)
      return is_list_of_strings(v, true)
    end,
    'a list of file names',
  },
  settings = {
    function(v)
      return type(v) == 'table'
    end,
    'a table',
  },
  notify_progress = {
    function(v)
      return type(v) == 'boolean'
    end,
    'a boolean',
  },
  ask_output = { enum_output, output_expect, true },
  window = { enum_window, window_expect, true },
  on_attach = { vim.is_callable, 'a function' },
  chat = {
    is_chat,
    'a table with layout ("split", "vsplit" or "float"), size (a number > 0), prompt_height (a whole number >= 1), mappings (a boolean)',
  },
  models = { is_model_list, 'a list of "name" or "openai:name" / "anthropic:name" strings' },
  review = { enum_review, review_expect, true },
}

--- The valid option names, sorted.
function M.keys()
  local keys = vim.tbl_keys(schema)
  table.sort(keys)
  return keys
end

local function distance(a, b)
  local previous = {}
  for j = 0, #b do
    previous[j] = j
  end
  for i = 1, #a do
    local current = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      current[j] = math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
    end
    previous = current
  end
  return previous[#b]
end

local function unknown_key_message(source, key)
  local message = ('%s: unknown option `%s`'):format(source, tostring(key))
  if type(key) == 'string' then
    local best, best_distance
    for _, known in ipairs(M.keys()) do
      local d = distance(key, known)
      if not best_distance or d < best_distance then
        best, best_distance = known, d
      end
    end
    if best_distance and best_distance <= 2 then
      return message .. (' (did you mean `%s`?)'):format(best)
    end
  end
  return message .. ' (valid options: ' .. table.concat(M.keys(), ', ') .. ')'
end

--- Checks `opts` from `source` (for messages). Returns the valid options and a list of
--- error messages, one per unknown key or value of the wrong type.
function M.validate_options(opts, source)
  local valid, errors = {}, {}
  if opts == nil then
    return valid, errors
  end
  if type(opts) ~= 'table' then
    table.insert(errors, ('%s must be a table, got %s'):format(source, type(opts)))
    return valid, errors
  end
  for key, value in pairs(opts) do
    local spec = schema[key]
    if not spec then
      table.insert(errors, unknown_key_message(source, key))
    elseif spec[1](value) then
      valid[key] = value
    else
      local got = type(value)
      if spec[3] and type(value) == 'string' then
        got = ('"%s"'):format(value)
      end
      table.insert(errors, ('%s: option `%s` must be %s, got %s'):format(source, key, spec[2], got))
    end
  end
  table.sort(errors)
  return valid, errors
end

--- Options given to setup{}; nil until it is called.
local setup_opts = nil

--- Records options from `require('switchyard').setup(opts)`; returns the error messages
--- (which `get()` keeps returning, for :checkhealth).
function M.setup(opts)
  setup_opts = opts or {}
  local _, errors = M.validate_options(setup_opts, 'setup()')
  return errors
end

local function from_global()
  local g = vim.g.switchyard
  if type(g) == 'function' then
    local ok, result = pcall(g)
    if not ok then
      return nil, { ('vim.g.switchyard() failed: %s'):format(result) }
    end
    g = result
  end
  local valid, errors = M.validate_options(g, 'vim.g.switchyard')
  return valid, errors
end

--- The options in force and the problems found in them (a list, empty when all is well).
function M.get()
  local global, errors = from_global()
  local from_setup = {}
  if setup_opts then
    local errs
    from_setup, errs = M.validate_options(setup_opts, 'setup()')
    vim.list_extend(errors, errs)
  end
  local merged = vim.tbl_extend('force', {}, M.defaults, global or {}, from_setup)
  -- `chat` is merged key by key, so `chat = { layout = 'float' }` keeps the other defaults.
  merged.chat = vim.tbl_extend('force', {}, M.defaults.chat, (global or {}).chat or {}, from_setup.chat or {})
  return merged, errors
end

--- Validates a function argument with `vim.validate`, in the form this Neovim takes
--- (from 0.11 `vim.validate(name, value, type, optional)`, before a spec table).
function M.validate(name, value, expected, optional)
  if vim.fn.has('nvim-0.11') == 1 then
    vim.validate(name, value, expected, optional)
  else
    vim.validate({ [name] = { value, expected, optional } })
  end
end

return M
