--- Review mode (`review = "changes"`): each change the agent proposes arrives as
--- `switchyard/reviewChange` and opens in a new tab as a diff of the file's current text
--- (left) and the proposed text (right, the review buffer). Hunks are accepted or
--- rejected one by one or all at once; finishing answers the request with the accepted
--- hunks, which the server then applies. See `:help switchyard-review`.
local lsp = require('switchyard.lsp')

local M = {}

local api = vim.api
local ns = api.nvim_create_namespace('switchyard_review')

--- The review on screen, and the ones waiting for it to finish (one at a time).
local current = nil
local waiting = {}

local function text_lines(text)
  local lines = vim.split(text or '', '\n', { plain = true })
  if #lines > 1 and lines[#lines] == '' then
    table.remove(lines)
  end
  return lines
end

local function scratch(name, lines, filetype)
  for _, old in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_get_name(old) == name then
      pcall(api.nvim_buf_delete, old, { force = true })
    end
  end
  local bufnr = api.nvim_create_buf(false, true)
  api.nvim_buf_set_name(bufnr, name)
  api.nvim_buf_set_lines(bufnr, 0, -1, false, lines)
  vim.bo[bufnr].buftype = 'nofile'
  vim.bo[bufnr].bufhidden = 'wipe'
  vim.bo[bufnr].swapfile = false
  vim.bo[bufnr].modifiable = false
  if filetype and filetype ~= '' then
    vim.bo[bufnr].filetype = filetype
  end
  return bufnr
end

--- The filetype of `path`: its buffer's when it is open, else detected from the name.
local function filetype_of(path)
  local bufnr = vim.fn.bufnr(path)
  if bufnr ~= -1 and vim.bo[bufnr].filetype ~= '' then
    return vim.bo[bufnr].filetype
  end
  local ok, ft = pcall(vim.filetype.match, { filename = path })
  return ok and type(ft) == 'string' and ft or nil
end

local function counts(review)
  local accepted, rejected = 0, 0
  for _, hunk in ipairs(review.hunks) do
    if review.decisions[hunk.index] == true then
      accepted = accepted + 1
    elseif review.decisions[hunk.index] == false then
      rejected = rejected + 1
    end
  end
  return accepted, rejected, #review.hunks - accepted - rejected
end

--- The review window's status line: the file, the tally and the keys.
function M.status_text(review)
  review = review or current
  if not review then
    return ''
  end
  local accepted, rejected, undecided = counts(review)
  return ('Review %s %s: %d accepted, %d rejected, %d undecided of %d'):format(
    review.tool,
    review.name,
    accepted,
    rejected,
    undecided,
    #review.hunks
  )
end

--- The row (0-based) a hunk starts at in the proposed (`new`) or current text.
local function hunk_row(hunk, new, line_count)
  local start = new and hunk.newStart or hunk.oldStart
  return math.max(math.min(start, line_count - 1), 0)
end

local function draw(review)
  for _, side in ipairs({ { review.old_buf, false }, { review.new_buf, true } }) do
    local bufnr, new = side[1], side[2]
    if api.nvim_buf_is_valid(bufnr) then
      api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
      local count = api.nvim_buf_line_count(bufnr)
      for i, hunk in ipairs(review.hunks) do
        local decision = review.decisions[hunk.index]
        local label = decision == true and '✓ accepted' or decision == false and '✗ rejected' or '? undecided'
        api.nvim_buf_set_extmark(bufnr, ns, hunk_row(hunk, new, count), 0, {
          virt_text = {
            { ('  hunk %d/%d %s'):format(i, #review.hunks, label), decision == nil and 'WarningMsg' or 'Comment' },
          },
          virt_text_pos = 'eol',
        })
      end
    end
  end
  if review.new_win and api.nvim_win_is_valid(review.new_win) then
    vim.wo[review.new_win].statusline = '%<' .. M.status_text(review):gsub('%%', '%%%%')
  end
end

--- The hunk under the cursor in a window of the review, or nil.
local function hunk_at_cursor(review)
  local win = api.nvim_get_current_win()
  local bufnr = api.nvim_win_get_buf(win)
  local new = bufnr == review.new_buf
  if not new and bufnr ~= review.old_buf then
    return nil
  end
  local row = api.nvim_win_get_cursor(win)[1] - 1
  local count = api.nvim_buf_line_count(bufnr)
  for _, hunk in ipairs(review.hunks) do
    local start = new and hunk.newStart or hunk.oldStart
    local lines = new and hunk.newLines or hunk.oldLines
    if lines > 0 and row >= start and row < start + lines then
      return hunk
    end
  end
  -- A hunk with no lines on this side sits between two lines: the one at either.
  for _, hunk in ipairs(review.hunks) do
    local lines = new and hunk.newLines or hunk.oldLines
    if lines == 0 then
      local at = hunk_row(hunk, new, count)
      if row == at or row == at - 1 then
        return hunk
      end
    end
  end
  return nil
end

--- Moves the cursor to the next undecided hunk after the cursor (wrapping), if any.
local function next_undecided(review, from)
  local win = api.nvim_get_current_win()
  local new = api.nvim_win_get_buf(win) == review.new_buf
  local count = api.nvim_buf_line_count(api.nvim_win_get_buf(win))
  local ordered = {}
  for i, hunk in ipairs(review.hunks) do
    if hunk == from then
      for j = i + 1, #review.hunks do
        table.insert(ordered, review.hunks[j])
      end
      for j = 1, i - 1 do
        table.insert(ordered, review.hunks[j])
      end
    end
  end
  for _, hunk in ipairs(ordered) do
    if review.decisions[hunk.index] == nil then
      api.nvim_win_set_cursor(win, { hunk_row(hunk, new, count) + 1, 0 })
      return
    end
  end
end

local function close(review)
  for _, bufnr in ipairs({ review.new_buf, review.old_buf }) do
    if api.nvim_buf_is_valid(bufnr) then
      pcall(api.nvim_buf_delete, bufnr, { force = true })
    end
  end
  if review.tab and api.nvim_tabpage_is_valid(review.tab) and #api.nvim_list_tabpages() > 1 then
    pcall(vim.cmd, ('tabclose %d'):format(api.nvim_tabpage_get_number(review.tab)))
  end
  if review.origin_tab and api.nvim_tabpage_is_valid(review.origin_tab) then
    pcall(api.nvim_set_current_tabpage, review.origin_tab)
  end
end

local open

--- Finishes the review on screen: the accepted hunks are the answer, the undecided ones
--- count as rejected.
function M.finish()
  local review = current
  if not review or review.done then
    return
  end
  review.done = true
  current = nil
  local accepted = {}
  local rejected = {}
  for _, hunk in ipairs(review.hunks) do
    if review.decisions[hunk.index] == true then
      table.insert(accepted, hunk.index)
    else
      table.insert(rejected, hunk.index)
    end
  end
  pcall(api.nvim_del_augroup_by_name, 'switchyard_review')
  close(review)
  local summary = ('review of %s: %d of %d hunk%s accepted'):format(
    review.name,
    #accepted,
    #review.hunks,
    #review.hunks == 1 and '' or 's'
  )
  require('switchyard.chat')._note(summary)
  lsp.notify(summary)
  review.answer({ accepted = accepted })
  lsp.fire('SwitchyardReviewDone')
  local next_review = table.remove(waiting, 1)
  if next_review then
    vim.schedule(function()
      open(next_review)
    end)
  end
end

--- Accepts (true) or rejects (false) the hunk under the cursor, then moves to the next
--- undecided one.
function M.decide(accept)
  local review = current
  if not review then
    lsp.notify('no review is open')
    return
  end
  local hunk = hunk_at_cursor(review)
  if not hunk then
    lsp.notify('no hunk under the cursor: ]c and [c move between hunks', vim.log.levels.WARN)
    return
  end
  review.decisions[hunk.index] = accept
  draw(review)
  next_undecided(review, hunk)
end

--- Accepts or rejects every hunk and finishes.
function M.decide_all(accept)
  local review = current
  if not review then
    lsp.notify('no review is open')
    return
  end
  for _, hunk in ipairs(review.hunks) do
    review.decisions[hunk.index] = accept
  end
  M.finish()
end

local function map_defaults(bufnr)
  local function map(lhs, plug, desc)
    vim.keymap.set('n', lhs, '<Plug>(' .. plug .. ')', { buffer = bufnr, remap = true, desc = desc, nowait = true })
  end
  map('a', 'SwitchyardReviewAccept', 'Switchyard: accept the hunk under the cursor')
  map('r', 'SwitchyardReviewReject', 'Switchyard: reject the hunk under the cursor')
  map('A', 'SwitchyardReviewAcceptAll', 'Switchyard: accept every hunk')
  map('R', 'SwitchyardReviewRejectAll', 'Switchyard: reject every hunk')
  map('q', 'SwitchyardReviewFinish', 'Switchyard: finish the review')
end

--- Opens `review` in a new tab: current text left, proposed text right, in diff mode.
open = function(review)
  current = review
  local path = vim.uri_to_fname(review.params.uri)
  review.name = vim.fn.fnamemodify(path, ':~:.')
  review.tool = tostring(review.params.tool or 'change')
  review.hunks = type(review.params.hunks) == 'table' and review.params.hunks or {}
  review.decisions = {}
  local filetype = filetype_of(path)
  review.origin_tab = api.nvim_get_current_tabpage()
  vim.cmd('tabnew')
  review.tab = api.nvim_get_current_tabpage()
  local scratch_buf = api.nvim_get_current_buf()
  review.old_buf = scratch('switchyard://review/current/' .. review.name, text_lines(review.params.oldText), filetype)
  review.new_buf = scratch('switchyard://review/proposed/' .. review.name, text_lines(review.params.newText), filetype)
  api.nvim_win_set_buf(0, review.old_buf)
  if api.nvim_buf_is_valid(scratch_buf) and scratch_buf ~= review.old_buf then
    pcall(api.nvim_buf_delete, scratch_buf, { force = true })
  end
  review.old_win = api.nvim_get_current_win()
  vim.cmd('diffthis')
  vim.cmd('rightbelow vsplit')
  review.new_win = api.nvim_get_current_win()
  api.nvim_win_set_buf(review.new_win, review.new_buf)
  vim.cmd('diffthis')
  vim.wo[review.old_win].statusline = '%<current ' .. review.name:gsub('%%', '%%%%') .. '%=a/r hunk · A/R all · q finish '
  for _, bufnr in ipairs({ review.old_buf, review.new_buf }) do
    if require('switchyard.config').get().chat.mappings then
      map_defaults(bufnr)
    end
  end
  local group = api.nvim_create_augroup('switchyard_review', { clear = true })
  api.nvim_create_autocmd('BufWipeout', {
    group = group,
    buffer = review.new_buf,
    desc = 'switchyard: a review closed otherwise is finished with what was decided',
    callback = function()
      vim.schedule(function()
        if current == review then
          M.finish()
        end
      end)
    end,
  })
  draw(review)
  if review.hunks[1] then
    api.nvim_win_set_cursor(review.new_win, { hunk_row(review.hunks[1], true, api.nvim_buf_line_count(review.new_buf)) + 1, 0 })
  end
  lsp.fire('SwitchyardReview')
end

local function start(review)
  if current then
    table.insert(waiting, review)
  else
    open(review)
  end
end

--- Keys the modal review of 0.7 passes on as motions (with one more key after a prefix).
local prefixes = { [']'] = true, ['['] = true, g = true, z = true, ['\23'] = true }

--- 0.7 wants the answer before the handler returns: the review runs its own key loop
--- until it is finished. Keys mapped in the review buffer run their mapping; others are
--- motions (`j`, `k`, `]c`, `[c`, `gg`, `G`, `<C-d>`, ...).
local function modal(review)
  lsp.note_once(
    'review-modal',
    'this Neovim (before 0.10) cannot answer a review later: it is modal, only its keys and motions work until you finish it'
  )
  local answer
  review.answer = function(result)
    answer = result
  end
  start(review)
  while not answer do
    vim.cmd('redraw')
    local ok, key = pcall(vim.fn.getcharstr)
    if not ok or key == '\27' or key == '\3' then
      M.finish()
    elseif current then
      local mapping = vim.fn.maparg(key, 'n', false, true)
      if type(mapping) == 'table' and mapping.buffer == 1 then
        -- :normal (with mappings) leaves the keys typed ahead for the next turns.
        pcall(vim.cmd, 'normal ' .. key)
      else
        if prefixes[key] then
          key = key .. vim.fn.getcharstr()
        end
        pcall(vim.cmd, 'normal! ' .. key)
      end
    end
  end
  return answer
end

--- Handles `switchyard/reviewChange`: returns `{ accepted = [...] }` once the user has
--- finished the review (yielding meanwhile from 0.10 on).
function M.handle(params)
  local review = { params = params }
  if lsp.can_wait() then
    local co = coroutine.running()
    review.answer = function(result)
      vim.schedule(function()
        coroutine.resume(co, result)
      end)
    end
    start(review)
    return coroutine.yield()
  end
  return modal(review)
end

--- The review on screen (for the statusline and tests), or nil.
function M.current()
  return current
end

return M
