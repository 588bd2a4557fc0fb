-- A small lookup frame built once at the top level, joined to every task's rows.
local labels = frame.new{
  {"code", {"en", "de", "fr"}},
  {"language", {"English", "German", "French"}},
}

return {
  map = function(input, ctx)
    local f = frame.new{ {"code", "string"}, {"n", "int64"} }
    for line in input:lines() do
      local code = line:match("^(%a%a)")
      if code then f:append{ code = code:lower(), n = 1 } end
    end
    return f:group_by("code"):agg{ n = sum("n") }
  end,
  reduce = function(f, ctx)
    local r = f:group_by("code"):agg{ n = sum("n") }
              :join(labels, { on = "code", how = "left" })
              :sort_by({"n", "desc"}, "code")
    return r
  end,
}
